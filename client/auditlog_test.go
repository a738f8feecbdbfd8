package client

import (
	"testing"
	"time"
)

// The one line `audit verify` prints, for each shape of report.
func TestAuditReportLines(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		got, want string
	}{
		{(&AuditProblem{Seq: 3, Author: "Kari Nordmann (kari-laptop)", At: at, Kind: AuditEdited, Detail: "it differs from this laptop's copy"}).Error(),
			"audit log damaged: entry 3 (recorded by Kari Nordmann (kari-laptop) at 2026-11-29 10:04:05 UTC): edited: it differs from this laptop's copy"},
		{(&AuditProblem{Seq: 4, Author: "relay", Kind: AuditMissing, Detail: "x"}).Error(),
			"audit log damaged: entry 4 (recorded by relay): missing: x"},
		{(&AuditProblem{Seq: 5, Kind: AuditTruncated, Detail: "y"}).Error(),
			"audit log damaged: entry 5: newest entries deleted: y"},
		{(&AuditProblem{Kind: "admin chain", Detail: "chain rolled back"}).Error(),
			"audit log damaged: admin chain: chain rolled back"},
		{(&AuditReport{}).Summary(),
			"audit log intact: 0 entries (0 access events readable here), relay and this laptop agree; no signed checkpoint yet"},
		{(&AuditReport{Entries: 1, Events: 1, Checkpoint: 1, CheckpointPos: 9}).Summary(),
			"audit log intact: 1 entry (1 access event readable here), relay and this laptop agree; signed checkpoint at chain position 9 covers entries 1-1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}
