package statedir

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// StoreFile is the run store's file name in the state directory.
const StoreFile = "runs.db"

// ArchiveFormat names the format of an export archive: a gzip'd tar of
// MANIFEST.json, runs.db (an online backup of the run store, without
// -wal or -shm) and the directory's other files as they are.
const ArchiveFormat = "felhom-agent-state/1"

// Manifest is MANIFEST.json, the first member of an export archive.
type Manifest struct {
	Format  string         `json:"format"`  // ArchiveFormat
	Created time.Time      `json:"created"` // when the export was made
	Source  string         `json:"source"`  // the state directory exported
	Files   []ManifestFile `json:"files"`
}

// ManifestFile is one file of the archive besides the manifest.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// own reports whether name is the agent's own in the directory, and not
// carried as an operator's file: the store and its journals, the lock, a
// store being created.
func own(name string) bool {
	return name == LockFile || name == StoreFile || strings.HasPrefix(name, StoreFile+"-") ||
		strings.HasPrefix(name, StoreFile+".new") || strings.HasPrefix(name, ".import-")
}

// Export writes the state of dir to the archive file (which must not
// exist; mode 0600: it holds the run records): an online backup of the run
// store, consistent even while an agent serves from dir, and every other
// regular file of dir. It never takes dir's lock.
func Export(ctx context.Context, dir, file string) (Manifest, error) {
	m := Manifest{Format: ArchiveFormat, Created: time.Now().UTC(), Source: dir}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("statedir: export to %s: the file exists; choose another name", file)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(file), ".felhom-export-")
	if err != nil {
		return m, fmt.Errorf("statedir: export: %w", err)
	}
	defer os.RemoveAll(tmp)
	members := map[string]string{} // archive name -> file to read
	if err := store.Backup(ctx, filepath.Join(dir, StoreFile), filepath.Join(tmp, StoreFile)); err != nil {
		return m, fmt.Errorf("statedir: export %s: %w", dir, err)
	}
	members[StoreFile] = filepath.Join(tmp, StoreFile)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return m, fmt.Errorf("statedir: export: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && !own(e.Name()) {
			members[e.Name()] = filepath.Join(dir, e.Name())
		}
	}
	names := []string{StoreFile}
	for n := range members {
		if n != StoreFile {
			names = append(names, n)
		}
	}
	for _, n := range names {
		sum, size, err := hashFile(members[n])
		if err != nil {
			return m, fmt.Errorf("statedir: export: %w", err)
		}
		m.Files = append(m.Files, ManifestFile{Name: n, Size: size, SHA256: sum})
	}

	part := file + ".part"
	out, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return m, fmt.Errorf("statedir: export: %w", err)
	}
	defer os.Remove(part)
	if err := writeArchive(out, m, members); err != nil {
		out.Close()
		return m, fmt.Errorf("statedir: export to %s: %w", file, err)
	}
	if err := errors.Join(out.Sync(), out.Close()); err != nil {
		return m, fmt.Errorf("statedir: export to %s: %w", file, err)
	}
	if err := os.Rename(part, file); err != nil {
		return m, fmt.Errorf("statedir: export: %w", err)
	}
	return m, nil
}

func writeArchive(w io.Writer, m Manifest, members map[string]string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mj, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: "MANIFEST.json", Mode: 0o600, Size: int64(len(mj)), ModTime: m.Created}); err != nil {
		return err
	}
	if _, err := tw.Write(mj); err != nil {
		return err
	}
	for _, f := range m.Files {
		in, err := os.Open(members[f.Name])
		if err != nil {
			return err
		}
		err = tw.WriteHeader(&tar.Header{Name: f.Name, Mode: 0o600, Size: f.Size, ModTime: m.Created})
		if err == nil {
			_, err = io.CopyN(tw, in, f.Size)
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return errors.Join(tw.Close(), gz.Close())
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// maxMember bounds one archive member, against a crafted archive.
const maxMember = 64 << 30

// Import restores an export archive into dir, for a new host or after a
// loss. It refuses, changing nothing, when an agent holds dir (its lock),
// when dir already holds a run store (it never overwrites one: move it
// aside first), or when the archive is not whole (a checksum or the run
// store's quick_check fails). Files are unpacked beside their places and
// renamed into them, the run store last.
func Import(ctx context.Context, dir, file string) (Manifest, error) {
	var m Manifest
	l, err := Lock(dir)
	if err != nil {
		return m, err
	}
	defer l.Close()
	if _, err := os.Stat(filepath.Join(dir, StoreFile)); !errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("statedir: import into %s: it already holds a run store (%s); importing never replaces one: move it aside first (mv %s %s.old, with its -wal and -shm files)",
			dir, StoreFile, filepath.Join(dir, StoreFile), filepath.Join(dir, StoreFile))
	}
	in, err := os.Open(file)
	if err != nil {
		return m, fmt.Errorf("statedir: import: %w", err)
	}
	defer in.Close()
	tmp, err := os.MkdirTemp(dir, ".import-")
	if err != nil {
		return m, fmt.Errorf("statedir: import: %w", err)
	}
	defer os.RemoveAll(tmp)
	if m, err = unpack(in, tmp); err != nil {
		return m, fmt.Errorf("statedir: import %s: %w", file, err)
	}
	if err := store.Check(ctx, filepath.Join(tmp, StoreFile)); err != nil {
		return m, fmt.Errorf("statedir: import %s: the run store in it: %w", file, err)
	}
	for _, f := range m.Files {
		if f.Name == StoreFile {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, f.Name)); err == nil {
			return m, fmt.Errorf("statedir: import into %s: %s exists; importing never replaces a file: move it aside first", dir, f.Name)
		}
	}
	for _, f := range append(otherFiles(m.Files), ManifestFile{Name: StoreFile}) {
		if err := os.Rename(filepath.Join(tmp, f.Name), filepath.Join(dir, f.Name)); err != nil {
			return m, fmt.Errorf("statedir: import: %w", err)
		}
	}
	d, err := os.Open(dir)
	if err == nil {
		err = errors.Join(d.Sync(), d.Close())
	}
	return m, err
}

func otherFiles(fs []ManifestFile) []ManifestFile {
	var out []ManifestFile
	for _, f := range fs {
		if f.Name != StoreFile {
			out = append(out, f)
		}
	}
	return out
}

// unpack reads an archive into dir, checking it against its manifest.
func unpack(r io.Reader, dir string) (Manifest, error) {
	var m Manifest
	gz, err := gzip.NewReader(r)
	if err != nil {
		return m, fmt.Errorf("not an export archive: %w", err)
	}
	tr := tar.NewReader(gz)
	h, err := tr.Next()
	if err != nil || h.Name != "MANIFEST.json" || h.Size > 1<<20 {
		return m, errors.New("not an export archive: MANIFEST.json is not its first member")
	}
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
		return m, fmt.Errorf("MANIFEST.json: %w", err)
	}
	if m.Format != ArchiveFormat {
		return m, fmt.Errorf("archive format %q; this agent reads %q", m.Format, ArchiveFormat)
	}
	want := map[string]ManifestFile{}
	for _, f := range m.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || f.Name == LockFile {
			return m, fmt.Errorf("MANIFEST.json names %q, which is not a plain file name", f.Name)
		}
		want[f.Name] = f
	}
	if _, ok := want[StoreFile]; !ok {
		return m, errors.New("the archive holds no run store")
	}
	got := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, err
		}
		f, ok := want[h.Name]
		if !ok || got[h.Name] || h.Typeflag != tar.TypeReg || h.Size != f.Size || h.Size > maxMember {
			return m, fmt.Errorf("member %q does not match MANIFEST.json", h.Name)
		}
		out, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return m, err
		}
		hs := sha256.New()
		_, err = io.CopyN(io.MultiWriter(out, hs), tr, h.Size)
		err = errors.Join(err, out.Sync(), out.Close())
		if err != nil {
			return m, err
		}
		if hex.EncodeToString(hs.Sum(nil)) != f.SHA256 {
			return m, fmt.Errorf("member %q: checksum does not match MANIFEST.json (a damaged archive)", h.Name)
		}
		got[h.Name] = true
	}
	for n := range want {
		if !got[n] {
			return m, fmt.Errorf("member %q of MANIFEST.json is missing (a truncated archive)", n)
		}
	}
	return m, nil
}
