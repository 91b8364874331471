package channel

import (
	"encoding/json"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// EncodeReport encodes rep in at most limit bytes. A report that is too
// large is cut in this order, each step only if still needed, with
// Truncated set: long strings are clipped (run errors, guest
// descriptions and errors, disk errors, pending operations' what, plans'
// steps and errors); gate audit entries are dropped from the newest end
// (AuditOmitted; they go in a later report, the cursor only passes the
// entries sent); runs likewise (RunsOmitted); plans likewise
// (PlansOmitted; they stay kept for the next report) — after the history,
// since a plan answers a question the hub asked now, before the guests,
// which are the heartbeat's own content; guests are dropped from the end
// (GuestsOmitted); the disk, sensor and storage lists are emptied; pending
// operations are dropped from the newest end (PendingOmitted). rep is
// modified to what was sent.
func EncodeReport(rep *Report, limit int) ([]byte, error) {
	b, err := json.Marshal(rep)
	if err != nil || len(b) <= limit {
		return b, err
	}
	rep.Truncated = true
	for i := range rep.Runs {
		rep.Runs[i].Error = clip.String(rep.Runs[i].Error, 512)
	}
	for i := range rep.Guests {
		g := &rep.Guests[i]
		g.Error = clip.String(g.Error, 512)
		if g.Spec != nil {
			g.Spec.Description = clip.String(g.Spec.Description, 256)
		}
	}
	for i := range rep.Disks {
		rep.Disks[i].Error = clip.String(rep.Disks[i].Error, 256)
	}
	for i := range rep.Pending {
		rep.Pending[i].What = clip.String(rep.Pending[i].What, 512)
	}
	for i := range rep.Plans {
		p := &rep.Plans[i]
		p.Error = clip.String(p.Error, 512)
		for j := range p.Steps {
			p.Steps[j].What, p.Steps[j].Outcome = clip.String(p.Steps[j].What, 256), clip.String(p.Steps[j].Outcome, 256)
		}
	}
	if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
		return b, err
	}
	for len(rep.Audit) > 0 {
		keep := len(rep.Audit) / 2
		rep.AuditOmitted += len(rep.Audit) - keep
		rep.Audit = rep.Audit[:keep]
		if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
			return b, err
		}
	}
	for len(rep.Runs) > 0 {
		keep := len(rep.Runs) / 2
		rep.RunsOmitted += len(rep.Runs) - keep
		rep.Runs = rep.Runs[:keep]
		if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
			return b, err
		}
	}
	for len(rep.Plans) > 0 {
		keep := len(rep.Plans) / 2
		rep.PlansOmitted += len(rep.Plans) - keep
		rep.Plans = rep.Plans[:keep]
		if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
			return b, err
		}
	}
	for len(rep.Guests) > 0 {
		keep := len(rep.Guests) / 2
		rep.GuestsOmitted += len(rep.Guests) - keep
		rep.Guests = rep.Guests[:keep]
		if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
			return b, err
		}
	}
	rep.Disks, rep.Sensors, rep.Storage = nil, nil, nil
	if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
		return b, err
	}
	for len(rep.Pending) > 0 {
		keep := len(rep.Pending) / 2
		rep.PendingOmitted += len(rep.Pending) - keep
		rep.Pending = rep.Pending[:keep]
		if b, err = json.Marshal(rep); err != nil || len(b) <= limit {
			return b, err
		}
	}
	return nil, fmt.Errorf("the host report is %d bytes even cut down, over the limit of %d", len(b), limit)
}
