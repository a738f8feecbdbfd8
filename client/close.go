package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/syncproto"
)

// ResidentClose closes a case on move-out: the resident record gets the
// move-out date and category, a closed-case summary with nothing that
// identifies the resident goes into the directory for the annual report,
// and a signed "case closed" statement is appended. The case's data stays
// until the org's retention period has passed.
func (d *Device) ResidentClose(ctx context.Context, ref, movedTo string) error {
	if err := d.requireCoordinator(); err != nil {
		return err
	}
	if err := replica.ValidateField(replica.KindResident, "moved_to", movedTo); err != nil {
		return err
	}
	if _, err := d.Sync(ctx); err != nil {
		return fmt.Errorf("close case: sync first: %w", err)
	}
	sid, err := d.resolveResident(ref)
	if err != nil {
		return err
	}
	if s := d.chain.State().Streams[sid]; s.Closed {
		return errors.New("close case: the case is already closed")
	}
	v, err := d.rep.Resident(sid, false)
	if err != nil {
		return err
	}
	now := d.opts.now()
	today := now.Format("2006-01-02")
	summary := map[string]string{
		"arrived":   monthOf(v.Fields["arrived"]),
		"moved_out": now.Format("2006-01"),
		"moved_to":  movedTo,
	}
	if u := v.Fields["unit"]; u != "" {
		summary["unit"] = u
	}
	if a, err := time.Parse("2006-01-02", v.Fields["arrived"]); err == nil {
		if m := monthsBetween(a, now); m > 0 {
			summary["stay_months"] = strconv.Itoa(m)
		}
	}
	summary["threat_assessment"] = "no"
	if len(v.Records["threat"]) > 0 {
		summary["threat_assessment"] = "yes"
	}
	minutes := map[string]int{}
	for _, e := range v.Log {
		minutes[e.Category] += e.Minutes
	}
	for cat, m := range minutes {
		if m > 0 {
			summary["minutes_"+cat] = strconv.Itoa(m)
		}
	}
	ops, err := d.rep.SetOps(sid, replica.KindResident, syncproto.DeltaID{}, map[string]string{
		"moved_out": today, "moved_to": movedTo, "closed": "yes"})
	if err != nil {
		return err
	}
	if _, err := d.commit(sid, ops); err != nil {
		return err
	}
	if err := d.setDirectory("closed_case", syncproto.DeltaID(sid), summary); err != nil {
		return err
	}
	if _, err := d.postStatement(ctx, &syncproto.CaseClosed{Stream: sid}, nil); err != nil {
		return err
	}
	var res SyncResult
	if err := d.push(ctx, &res); err != nil {
		return err
	}
	// The alarm card must no longer give the address out.
	d.resealNotices(ctx, &sid)
	return d.save()
}

func monthOf(date string) string {
	if len(date) >= 7 {
		return date[:7]
	}
	return date
}

func monthsBetween(a, b time.Time) int {
	m := (b.Year()-a.Year())*12 + int(b.Month()) - int(a.Month())
	if b.Day() < a.Day() {
		m--
	}
	return m
}
