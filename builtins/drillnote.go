package builtins

import (
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// DrillNotePrefix begins the line of an archive's notes that records the
// last restore drill of that archive ("felhom-drill: ok
// 2026-12-01T03:30:00Z"). The notes travel with the archive (PVE keeps
// them beside it on the storage), so the agent of whichever node sees the
// storage — the one a migrated guest lands on — reads the drill's verdict
// from the storage listing.
const DrillNotePrefix = "felhom-drill: "

// DrillNote is a restore drill's verdict on the archive it verified.
type DrillNote struct {
	OK bool
	At time.Time
}

// String is the notes line of n.
func (n DrillNote) String() string {
	verdict := "failed"
	if n.OK {
		verdict = "ok"
	}
	return DrillNotePrefix + verdict + " " + n.At.UTC().Format(time.RFC3339)
}

// ParseDrillNote reads the drill line from an archive's notes. Only the
// first line is read: a storage listing carries no more (pve-storage
// Plugin.pm get_subdir_files reads the .notes file's first line), which
// is why [WithDrillNote] puts the line first.
func ParseDrillNote(notes string) (DrillNote, bool) {
	first, _, _ := strings.Cut(notes, "\n")
	rest, ok := strings.CutPrefix(strings.TrimRight(first, "\r"), DrillNotePrefix)
	if !ok {
		return DrillNote{}, false
	}
	verdict, stamp, ok := strings.Cut(rest, " ")
	if !ok || (verdict != "ok" && verdict != "failed") {
		return DrillNote{}, false
	}
	at, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return DrillNote{}, false
	}
	return DrillNote{OK: verdict == "ok", At: at}, true
}

// WithDrillNote is notes with n as their first line, in place of any
// earlier drill line; the operator's own lines are kept below it.
func WithDrillNote(notes string, n DrillNote) string {
	lines := []string{n.String()}
	if notes != "" {
		for l := range strings.SplitSeq(notes, "\n") {
			if !strings.HasPrefix(l, DrillNotePrefix) {
				lines = append(lines, l)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// pveRecordDrill is proxmox.record_drill: the drill line written into the
// archive's notes, the operator's notes kept.
func pveRecordDrill(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		archive string
		passed  bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "archive", &archive, "ok", &passed); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "archive", archive); err != nil {
		return nil, err
	}
	if _, _, ok := proxmox.ArchiveKind(archive); !ok {
		return nil, fmt.Errorf("%s: archive %q is not a backup archive (a vzdump file or a Proxmox Backup Server snapshot)", b.Name(), archive)
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if env.Now != nil {
		now = env.Now
	}
	notes, err := api.VolumeNotes(env.Context, archive)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the notes of %s: %w", b.Name(), archive, err)
	}
	if err := api.SetVolumeNotes(env.Context, archive, WithDrillNote(notes, DrillNote{OK: passed, At: now()})); err != nil {
		return nil, fmt.Errorf("%s: writing the notes of %s: %w", b.Name(), archive, err)
	}
	return starlark.None, nil
}
