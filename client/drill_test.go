package client

// Revocation drills (DESIGN-NOTES properties 3 and 4) with the real
// binaries: a lost worker laptop, a relay that forges wipe orders, a
// stolen coordinator laptop, assignment scoping and unassignment, and the
// refusals of bad admin input. Each scenario runs its own relay process
// on a loopback port; laptops are FRISTED_HOME directories driven with
// the fristed binary, and the test inspects replicas through the library
// and the relay's SQLite file directly.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestDrill builds the binaries once and runs the scenarios side by side.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	start := time.Now()
	bins := buildDrillBinaries(t, t.TempDir())
	drillElapsed(t, "build", start)
	for _, sc := range []struct {
		name string
		run  func(*testing.T, drillBins)
	}{
		{"LostLaptop", drillLostLaptop},
		{"ForgedWipe", drillForgedWipe},
		{"StolenCoordinator", drillStolenCoordinator},
		{"AssignmentScoping", drillAssignmentScoping},
		{"BadInput", drillBadInput},
		{"OfflineEpochChange", drillOfflineEpochChange},
		{"Retention", drillRetention},
		{"AuditTampering", drillAuditTampering},
		{"AuditUnpulled", drillAuditUnpulled},
		{"AuditLaterCoordinators", drillAuditLaterCoordinators},
		{"AuditUnopenable", drillAuditUnopenable},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, bins)
		})
	}
}

// drillLostLaptop: worker A loses laptop A1. Before the revocation the
// thief images its disk and knows the passphrase. After it, nothing anyone
// writes - the coordinator, A's other laptop, B who was offline during
// the revocation - is readable with the keys on that image; the laptop
// itself is refused and wipes itself when it next syncs; the others sync
// on without noticing.
func drillLostLaptop(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	o.must(o.coord, "worker", "add", "Ola Hansen")
	a1, a2, b1 := o.home("a1"), o.home("a2"), o.home("b1")
	a1ID := o.enrol(o.coord, a1, "kari-laptop-1", "Kari Nordmann")
	o.enrol(o.coord, a2, "kari-laptop-2", "Kari Nordmann")
	o.enrol(o.coord, b1, "ola-laptop", "Ola Hansen")
	mina := o.residentAdd("Mina")
	_, se, code := o.run(o.coord, "Fjellveien 17B\n", "resident", "set", "Mina", "secret_address=@-")
	require.Equal(t, 0, code, "resident set: %s", se)
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Mina", "--worker", "Ola Hansen")
	o.must(o.coord, "sync")
	for _, h := range []string{a1, a2, b1} {
		o.must(h, "sync")
	}
	o.must(a1, "log", "add", "Mina", "--category", "safety", "--minutes", "30", "--text", "a1 before revocation")
	o.must(b1, "log", "add", "Mina", "--category", "practical", "--minutes", "10", "--text", "b1 before revocation")
	for _, h := range []string{a1, b1, a2, o.coord, a1} {
		o.must(h, "sync")
	}

	// The thief's image of A1, taken while it still worked.
	stolen := filepath.Join(o.dir, "stolen-a1")
	drillCopyDir(t, a1, stolen)
	before := o.streamHeads()
	revStart := time.Now()
	so, se, code := o.run(o.coord, "", "device", "revoke", "kari-laptop-1")
	require.Equal(t, 0, code, "device revoke: %s", se)
	require.Equal(t, a1ID.String(), drillLastLine(so), "device revoke prints the revoked device id last")
	// The audit log is keyed to coordinator laptops only: a worker laptop
	// never held its key, so it needs no new epoch.
	require.Contains(t, se, "2 case(s) re-keyed", "the resident and the directory")
	drillElapsed(t, "device revoke (CLI, re-keys resident and directory)", revStart)
	revokedAt := o.chain().State().Devices[a1ID].RevokedAt

	// B1 was offline during the revocation: it writes under the chain it
	// last saw, then syncs.
	o.must(b1, "log", "add", "Mina", "--category", "safety", "--minutes", "15", "--text", "b1 offline after revocation")
	o.with(b1, func(d *Device) {
		var n int
		require.NoError(t, d.db().QueryRow(`SELECT COUNT(*) FROM local_outbox WHERE head_pos < ?`, int64(revokedAt)).Scan(&n))
		require.Equal(t, 1, n, "B1's edit was not written under a chain from before the revocation")
	})
	o.must(b1, "sync")
	// The coordinator writes a case entry, a directory change and an
	// audited reveal.
	o.must(o.coord, "log", "add", "Mina", "--category", "support_conversation", "--minutes", "45", "--text", "coordinator after revocation")
	o.must(o.coord, "worker", "add", "Per Berg")
	o.must(o.coord, "resident", "show", "Mina", "--reveal")
	o.must(o.coord, "sync")
	o.must(a2, "log", "add", "Mina", "--category", "leisure", "--minutes", "60", "--text", "a2 after revocation")
	o.must(a2, "sync")

	// Every epoch a stream had when A1 was revoked ends with A1 out of
	// the current epoch, and each current epoch started after it.
	c := o.chain()
	st := c.State()
	dir, _ := drillStreamOfKind(st, syncproto.StreamDirectory)
	audit, _ := drillStreamOfKind(st, syncproto.StreamAudit)
	for _, sid := range []syncproto.StreamID{mina, dir} {
		cur := st.Streams[sid].Current()
		require.False(t, cur.Has(a1ID), "stream %s: revoked laptop still in the current epoch", sid)
		require.Greater(t, cur.Pos, revokedAt, "stream %s: current epoch not started after the revocation", sid)
	}
	for _, e := range st.Streams[audit].Epochs {
		require.False(t, e.Has(a1ID), "audit epoch %d names the worker laptop", e.Epoch)
	}

	// The thief unlocks the image with the library and tries every key
	// on it against every delta the relay holds.
	var keys map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key
	var stolenSign *fcrypto.SigningKey
	var stolenBox *fcrypto.BoxIdentity
	var stolenRelayKey fcrypto.PublicKey
	o.with(stolen, func(d *Device) {
		keys = drillEpochKeys(t, d)
		stolenSign = d.kf.Sign
		stolenBox = d.kf.Box
		stolenRelayKey = d.pc.relayKey
	})
	require.Contains(t, keys, mina)
	require.Contains(t, keys, dir)
	require.NotContains(t, keys, audit, "a worker laptop never holds the audit log's key")
	openedBefore, sealedAfter := 0, map[syncproto.StreamID]int{}
	for _, sb := range o.batches() {
		after := sb.Seq > before[sb.Stream]
		if sb.Stream == audit {
			// Sealed to the coordinator laptops: nothing opens with the
			// stolen laptop's age identity, before or after.
			_, err := syncproto.OpenAuditBatch(sb.Batch, stolenBox, c.State().Devices[sb.Batch.Author].SignPub)
			require.ErrorIs(t, err, fcrypto.ErrNoIdentityMatch, "audit batch %d opened with the stolen laptop's identity", sb.Seq)
		}
		for _, sd := range sb.Batch.Deltas {
			_, ok := drillOpenDelta(sb.Batch, sd, keys)
			if after || sb.Stream == audit {
				require.False(t, ok, "stream %s batch %d (by %s, epoch %d; after the revocation: %v) opens with a key from the stolen laptop",
					sb.Stream, sb.Seq, sb.Batch.Author, sb.Batch.Epoch, after)
				if after {
					sealedAfter[sb.Stream]++
				}
				continue
			}
			// Everything before the revocation in these streams was
			// readable to A1: the test can open what it should.
			if sb.Stream == mina || sb.Stream == dir {
				require.True(t, ok, "stream %s batch %d, written before the revocation, does not open with the stolen keys", sb.Stream, sb.Seq)
				openedBefore++
			}
		}
	}
	t.Logf("stolen keys: %d streams; opened %d deltas from before the revocation; none of %v after", len(keys), openedBefore, sealedAfter)
	for name, sid := range map[string]syncproto.StreamID{"resident": mina, "directory": dir, "audit": audit} {
		require.Positive(t, sealedAfter[sid], "no %s delta was written after the revocation: the drill proves nothing there", name)
	}

	// The relay refuses the stolen keys outright.
	tc, err := transport.New(o.url, transport.Options{})
	require.NoError(t, err)
	tc.SetTenant(st.Tenant)
	tc.SetDevice(a1ID, stolenSign, stolenRelayKey)
	_, _, err = tc.PullBatches(context.Background(), mina, 0, 10, 0)
	var rev *transport.RevokedError
	require.ErrorAs(t, err, &rev, "pull with the stolen keys")

	// The real A1 comes back online: refused, verified, wiped.
	require.FileExists(t, filepath.Join(a1, identityFile))
	line := o.fail(a1, "sync")
	require.Contains(t, line, "revoked")
	require.Contains(t, line, "wiped")
	for _, f := range drillHomeFiles(t, a1) {
		require.False(t, f == identityFile || strings.HasPrefix(f, vaultDir+string(filepath.Separator)),
			"after the wipe FRISTED_HOME still holds %s", f)
	}
	require.NoDirExists(t, filepath.Join(a1, vaultDir))
	line = o.fail(a1, "resident", "list")
	require.Contains(t, line, "wiped")

	// A2 and B1 carry on and see each other's and the coordinator's
	// entries.
	for _, h := range []string{a2, b1, o.coord} {
		_, se, code := o.run(h, "", "sync")
		require.Equal(t, 0, code, "sync %s: %s", filepath.Base(h), se)
		require.NotContains(t, se, "could not be delivered")
	}
	want := []string{"a1 before revocation", "b1 before revocation", "b1 offline after revocation", "coordinator after revocation", "a2 after revocation"}
	for _, h := range []string{a2, b1, o.coord} {
		got := o.logTexts(h, "Mina")
		for _, w := range want {
			require.Contains(t, got, w, "%s's view of Mina's log", filepath.Base(h))
		}
	}
	o.with(a2, func(d *Device) {
		ws, err := d.WorkerList()
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(ws, func(w WorkerInfo) bool { return w.Name == "Per Berg" }),
			"A2 does not see the directory change made after the revocation")
	})
}

// residentNames returns the pseudonyms a laptop lists.
func (o *drillOrg) residentNames(home string) []string {
	o.t.Helper()
	var list []struct {
		Pseudonym string `json:"pseudonym"`
	}
	require.NoError(o.t, json.Unmarshal([]byte(o.must(home, "resident", "list", "--json")), &list))
	var out []string
	for _, r := range list {
		out = append(out, r.Pseudonym)
	}
	slices.Sort(out)
	return out
}

// drillStreamOfKind returns the oldest live stream of a kind.
func drillStreamOfKind(st *syncproto.State, kind syncproto.StreamKind) (syncproto.StreamID, bool) {
	var best *syncproto.StreamInfo
	for _, s := range st.Streams {
		if s.Kind == kind && !s.Purged && (best == nil || s.CreatedAt < best.CreatedAt) {
			best = s
		}
	}
	if best == nil {
		return syncproto.StreamID{}, false
	}
	return best.ID, true
}

// drillForgingProxy stands before the real relay. While a forged answer
// is set it gives it to every request, as a malicious relay would;
// otherwise it passes requests through.
type drillForgingProxy struct {
	forged atomic.Pointer[[]byte]
	hits   atomic.Int32
}

func (p *drillForgingProxy) front(t *testing.T) func(string) string {
	return func(relayURL string) string {
		u, err := url.Parse(relayURL)
		require.NoError(t, err)
		rp := httputil.NewSingleHostReverseProxy(u)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if b := p.forged.Load(); b != nil {
				p.hits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusForbidden)
				w.Write(*b)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
}

// drillRevokedAnswer is the relay's device_revoked body carrying a
// revocation and a chain; nil revocation leaves both out.
func drillRevokedAnswer(revocation []byte, chain [][]byte) []byte {
	body := map[string]any{"code": "device_revoked", "message": "this device is revoked; verify the revocation and wipe"}
	if revocation != nil {
		body["revocation"] = base64.StdEncoding.EncodeToString(revocation)
		var cs []string
		for _, raw := range chain {
			cs = append(cs, base64.StdEncoding.EncodeToString(raw))
		}
		body["chain"] = cs
	}
	b, _ := json.Marshal(body)
	return b
}

// drillForgedWipe: a relay that tells a healthy laptop it was revoked,
// without a revocation that verifies against the org fingerprint, wipes
// nothing.
func drillForgedWipe(t *testing.T, bins drillBins) {
	proxy := &drillForgingProxy{}
	o := newDrillOrg(t, bins, proxy.front(t))
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	w1, w2 := o.home("w1"), o.home("w2")
	w1ID := o.enrol(o.coord, w1, "kari-laptop", "Kari Nordmann")
	o.enrol(o.coord, w2, "kari-old-laptop", "Kari Nordmann")
	o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(w1, "sync")
	o.must(w1, "log", "add", "Mina", "--category", "safety", "--minutes", "20", "--text", "w1 entry")
	o.must(w1, "sync")
	// A genuine revocation of Kari's other laptop, for the relay to
	// replay against this one.
	o.must(o.coord, "device", "revoke", "kari-old-laptop")

	c := o.chain()
	st := c.State()
	coordID := st.ActiveCoordinators()[0]
	genuine := o.chainRaws()
	var otherRevocation []byte
	for _, raw := range genuine {
		s, err := syncproto.UnmarshalStatement(raw)
		require.NoError(t, err)
		if r, ok := s.Body.(*syncproto.DeviceRevoked); ok && r.Device != w1ID {
			otherRevocation = raw
		}
	}
	require.NotNil(t, otherRevocation)

	// forge appends a revocation of w1 to the genuine chain, as the
	// coordinator laptop, signed with sign (nil: no valid signature).
	forge := func(sign *fcrypto.SigningKey) ([]byte, [][]byte) {
		s := c.Next(st.Tenant, syncproto.SignerDevice, coordID, uint64(time.Now().UnixMilli()), &syncproto.DeviceRevoked{Device: w1ID})
		if sign != nil {
			require.NoError(t, s.Sign(sign))
		} else {
			s.Sig = make([]byte, fcrypto.SignatureSize)
		}
		raw, err := s.Marshal()
		require.NoError(t, err)
		return raw, append(append([][]byte(nil), genuine...), raw)
	}
	unsigned, unsignedChain := forge(nil)
	stranger, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	wrongSig, wrongSigChain := forge(stranger)

	// A whole chain of another org, valid in itself, that enrols a device
	// with w1's id and revokes it.
	relayKey, err := fcrypto.ParsePublicKey(o.relay.RelayKey)
	require.NoError(t, err)
	other, err := relaytest.NewOrg(relayKey)
	require.NoError(t, err)
	oc, err := relaytest.NewDevice()
	require.NoError(t, err)
	_, err = other.Delegate(oc)
	require.NoError(t, err)
	ow, _, err := other.AddWorker(oc)
	require.NoError(t, err)
	fake, err := relaytest.NewDevice()
	require.NoError(t, err)
	fake.ID = w1ID
	_, err = other.Enrol(oc, fake, ow)
	require.NoError(t, err)
	otherOrgRevocation, err := other.Revoke(oc, fake)
	require.NoError(t, err)

	idPath := filepath.Join(w1, identityFile)
	idBefore, err := os.ReadFile(idPath)
	require.NoError(t, err)
	for _, f := range []struct {
		name string
		body []byte
	}{
		{"no revocation at all", drillRevokedAnswer(nil, nil)},
		{"unsigned revocation", drillRevokedAnswer(unsigned, unsignedChain)},
		{"revocation signed by a stranger", drillRevokedAnswer(wrongSig, wrongSigChain)},
		{"revocation without its chain", drillRevokedAnswer(unsigned, nil)},
		{"another org's revocation", drillRevokedAnswer(otherOrgRevocation, other.Raws())},
		{"another laptop's genuine revocation", drillRevokedAnswer(otherRevocation, genuine)},
	} {
		proxy.forged.Store(&f.body)
		hits := proxy.hits.Load()
		line := o.fail(w1, "sync")
		proxy.forged.Store(nil)
		require.Greater(t, proxy.hits.Load(), hits, "%s: the laptop never asked the relay", f.name)
		t.Logf("%s: %s", f.name, line)
		require.Contains(t, line, "nothing was wiped", "%s: the error must say the wipe order did not verify", f.name)
		require.NotContains(t, line, "has been wiped", f.name)
		idNow, err := os.ReadFile(idPath)
		require.NoError(t, err, "%s: identity file gone", f.name)
		require.Equal(t, idBefore, idNow, "%s: identity file changed", f.name)
		require.DirExists(t, filepath.Join(w1, vaultDir), f.name)
		require.NoFileExists(t, filepath.Join(w1, wipedMarker), f.name)
		o.with(w1, func(d *Device) {
			v, err := d.ResidentShow("Mina", false)
			require.NoError(t, err, "%s: the laptop no longer opens its case", f.name)
			require.NotEmpty(t, v.Log, f.name)
		})
	}
	// The real relay again: the laptop works as before.
	o.must(w1, "sync")
	require.Contains(t, o.logTexts(w1, "Mina"), "w1 entry")
}

// drillStatementsAfter returns the positions of statements after pos whose
// body satisfies match.
func drillStatementsAfter(c *syncproto.Chain, pos syncproto.ChainPos, match func(*syncproto.Statement) bool) []syncproto.ChainPos {
	var out []syncproto.ChainPos
	for p := pos + 1; int(p) < c.Len(); p++ {
		if s := c.Statement(p); match(s) {
			out = append(out, p)
		}
	}
	return out
}

// drillStolenCoordinator: a second coordinator laptop is stolen unlocked.
// After chain position P the thief enrols a laptop of their own for a
// worker and assigns that worker another resident. The other coordinator
// revokes the stolen laptop with the recovery file, compromised since P:
// the enrolment and the assignment are void, and every stream moves to an
// epoch without the stolen laptop or the one it enrolled.
func drillStolenCoordinator(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	c2, k1, thief := o.home("c2"), o.home("k1"), o.home("thief")
	c2ID := o.enrol(o.coord, c2, "coord-laptop-2", "")
	k1ID := o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	mina := o.residentAdd("Mina")
	sara := o.residentAdd("Sara")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "resident", "show", "Mina", "--reveal")
	for _, h := range []string{k1, c2, o.coord} {
		o.must(h, "sync")
	}
	o.must(k1, "log", "add", "Mina", "--category", "safety", "--minutes", "20", "--text", "k1 before theft")
	o.must(k1, "sync")
	p := o.head().Pos

	// The thief, on C2: a laptop of their own for Kari, and Sara for Kari.
	thiefID := o.enrol(c2, thief, "kari-new-laptop", "Kari Nordmann")
	o.must(c2, "assign", "Sara", "--worker", "Kari Nordmann")
	o.must(c2, "sync")
	// Kari's honest laptop syncs meanwhile: it is handed Sara and the
	// thief's epoch keys, and writes under them.
	o.must(k1, "sync")
	require.ElementsMatch(t, []string{"Mina", "Sara"}, o.residentNames(k1))
	o.must(k1, "log", "add", "Mina", "--category", "practical", "--minutes", "10", "--text", "k1 during theft")
	o.must(k1, "sync")
	o.must(thief, "sync")
	o.must(thief, "log", "add", "Mina", "--category", "practical", "--minutes", "10", "--text", "thief during theft")
	o.must(thief, "resident", "show", "Mina", "--reveal")
	o.must(thief, "sync")
	o.must(c2, "resident", "show", "Mina", "--reveal")
	o.must(c2, "sync")
	// The thief also writes from the stolen laptop itself, naming the chain
	// head at P so the batch looks written before the point; the relay
	// takes it (the head is in its chain). Kari's laptop then pulls and
	// merges it, as the stolen laptop is not revoked yet.
	o.with(c2, func(d *Device) { drillBackdatedLog(t, d, mina, p, "c2 backdated during theft") })
	o.must(k1, "sync")
	require.Contains(t, o.logTexts(k1, "Mina"), "c2 backdated during theft", "Kari's laptop before the revocation")

	c := o.chain()
	enrolled := drillStatementsAfter(c, p, func(s *syncproto.Statement) bool {
		e, ok := s.Body.(*syncproto.DeviceEnrolled)
		return ok && e.Device == thiefID
	})
	assigned := drillStatementsAfter(c, p, func(s *syncproto.Statement) bool {
		a, ok := s.Body.(*syncproto.Assigned)
		return ok && a.Stream == sara
	})
	require.Len(t, enrolled, 1)
	require.Len(t, assigned, 1)
	require.NotNil(t, c.State().Devices[thiefID])
	require.True(t, c.State().Streams[sara].Assigned[c.State().Devices[k1ID].Worker])

	start := time.Now()
	args := append([]string{"device", "revoke", c2ID.String(), "--compromised-since", strconv.FormatUint(uint64(p), 10)}, o.recoveryFlags()...)
	so, se, code := o.run(o.coord, "", args...)
	require.Equal(t, 0, code, "device revoke --compromised-since: %s", se)
	require.Equal(t, c2ID.String(), drillLastLine(so))
	drillElapsed(t, "revoke a coordinator laptop compromised since P", start)

	c = o.chain()
	st := c.State()
	dev := st.Devices[c2ID]
	require.True(t, dev.Revoked)
	require.True(t, dev.HasCompromisedSince)
	require.Equal(t, p, dev.CompromisedSince)
	require.True(t, c.IsVoid(enrolled[0]), "the thief's enrolment stands")
	require.True(t, c.IsVoid(assigned[0]), "the thief's assignment stands")
	require.Nil(t, st.Devices[thiefID], "the laptop the thief enrolled is still a device")
	require.False(t, st.Streams[sara].Assigned[st.Devices[k1ID].Worker], "Sara is still assigned to Kari")
	require.True(t, st.Streams[mina].Assigned[st.Devices[k1ID].Worker], "the honest assignment went with the void one")
	for sid, s := range st.Streams {
		if s.Purged {
			continue
		}
		cur := s.Current()
		require.False(t, cur.Has(c2ID), "stream %s (%s): stolen coordinator laptop in the current epoch", sid, s.Kind)
		require.False(t, cur.Has(thiefID), "stream %s (%s): thief's laptop in the current epoch", sid, s.Kind)
		require.Greater(t, cur.Pos, dev.RevokedAt, "stream %s (%s) not re-keyed after the revocation", sid, s.Kind)
	}
	var listed []string
	for _, d := range o.deviceList(o.coord) {
		listed = append(listed, d.ID)
		if d.ID == c2ID.String() {
			require.True(t, d.Revoked, "device list: the stolen laptop is not shown revoked")
		}
	}
	require.Contains(t, listed, c2ID.String())
	require.NotContains(t, listed, thiefID.String(), "device list shows the laptop the thief enrolled")

	// The audit log: the stream is rebuilt (the stolen laptop wrote to
	// it); the coordinator's own reveal from before the theft comes back,
	// the reveals by the stolen laptop and by the thief's laptop are void,
	// and the log verifies.
	o.must(o.coord, "sync")
	shown := o.must(o.coord, "audit", "show", "--resident", "Mina")
	require.Equal(t, 1, strings.Count(shown, "revealed the sealed fields"), "audit show:\n%s", shown)
	require.NotContains(t, shown, "coord-laptop-2) revealed")
	require.Regexp(t, `^audit log intact: 3 entries`, o.must(o.coord, "audit", "verify"))

	// Writes after the revocation; none opens with the keys on either
	// laptop the thief holds.
	before := o.streamHeads()
	o.must(o.coord, "log", "add", "Mina", "--category", "safety", "--minutes", "5", "--text", "coordinator after revocation")
	o.must(o.coord, "log", "add", "Sara", "--category", "safety", "--minutes", "5", "--text", "sara after revocation")
	o.must(o.coord, "worker", "add", "Per Berg")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	o.must(k1, "log", "add", "Mina", "--category", "leisure", "--minutes", "30", "--text", "k1 after revocation")
	o.must(k1, "resident", "show", "Mina", "--reveal")
	o.must(k1, "sync")
	o.must(o.coord, "resident", "show", "Mina", "--reveal")
	o.must(o.coord, "sync")
	auditSID, _ := drillStreamOfKind(o.chain().State(), syncproto.StreamAudit)
	var coordKeys map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key
	var tenant syncproto.TenantID
	o.with(o.coord, func(d *Device) { coordKeys, tenant = drillEpochKeys(t, d), d.pc.tenant })
	for _, h := range []string{thief, c2} {
		keys := map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key{}
		var box *fcrypto.BoxIdentity
		o.with(h, func(d *Device) { keys, box = drillEpochKeys(t, d), d.kf.Box })
		n, audits := 0, 0
		for _, sb := range o.batches() {
			if sb.Seq <= before[sb.Stream] {
				continue
			}
			if sb.Stream == auditSID {
				// Audit entries are sealed to the recipient of the audit
				// epoch re-keyed at the revocation, whose key c2 never
				// held: neither c2's identity nor a recipient derived from
				// any audit key it holds opens them.
				author := o.chain().State().Devices[sb.Batch.Author].SignPub
				_, err := syncproto.OpenAuditBatch(sb.Batch, box, author)
				require.ErrorIs(t, err, fcrypto.ErrNoIdentityMatch, "%s's identity opens audit batch %d, written after the revocation", filepath.Base(h), sb.Seq)
				for e, k := range keys[auditSID] {
					id, err := syncproto.AuditIdentity(k, tenant, auditSID, e)
					require.NoError(t, err)
					_, err = syncproto.OpenAuditBatch(sb.Batch, id, author)
					require.ErrorIs(t, err, fcrypto.ErrNoIdentityMatch, "%s's audit key of epoch %d opens audit batch %d, written after the revocation", filepath.Base(h), e, sb.Seq)
				}
				k := coordKeys[auditSID][sb.Batch.Epoch]
				require.NotNil(t, k, "the remaining coordinator's key of audit epoch %d", sb.Batch.Epoch)
				id, err := syncproto.AuditIdentity(k, tenant, auditSID, sb.Batch.Epoch)
				require.NoError(t, err)
				_, err = syncproto.OpenAuditBatch(sb.Batch, id, author)
				require.NoError(t, err, "the remaining coordinator opening audit batch %d", sb.Seq)
				audits++
			}
			for _, sd := range sb.Batch.Deltas {
				_, ok := drillOpenDelta(sb.Batch, sd, keys)
				require.False(t, ok, "%s's keys open stream %s batch %d, written after the revocation", filepath.Base(h), sb.Stream, sb.Seq)
				n++
			}
		}
		require.Positive(t, n)
		// k1's opening of Mina's log above (recorded before, sent after
		// the revocation), k1's reveal and the coordinator's reveal.
		require.Equal(t, 3, audits, "audit entries sent after the revocation")
	}

	// Kari's laptop no longer holds Sara and carries on with Mina; the
	// coordinator reads everything Kari wrote, before, during and after.
	require.Equal(t, []string{"Mina"}, o.residentNames(k1))
	o.must(o.coord, "sync")
	got := o.logTexts(o.coord, "Mina")
	for _, w := range []string{"k1 before theft", "k1 during theft", "k1 after revocation", "coordinator after revocation"} {
		require.Contains(t, got, w, "coordinator's view of Mina's log")
	}
	t.Logf("coordinator's view of Mina's log: %q", got)
	got = o.logTexts(k1, "Mina")
	for _, w := range []string{"k1 before theft", "k1 during theft", "k1 after revocation", "coordinator after revocation"} {
		require.Contains(t, got, w, "Kari's view of Mina's log")
	}
	// The thief's laptop wrote into Mina before the revocation; Kari's
	// laptop had not pulled it yet, and now ignores it. The backdated
	// entry it had merged is gone: it rebuilt Mina without it.
	require.NotContains(t, got, "thief during theft")
	require.NotContains(t, got, "c2 backdated during theft")

	// The coordinator had pulled the thief's entry before the revocation;
	// learning of the revocation, it rebuilt the case without it, so its
	// replica and Kari's agree.
	t.Run("VoidEditsGone", func(t *testing.T) {
		o := o.as(t)
		require.NotContains(t, o.logTexts(o.coord, "Mina"), "thief during theft")
		require.NotContains(t, o.logTexts(o.coord, "Mina"), "c2 backdated during theft")
		require.ElementsMatch(t, o.logTexts(k1, "Mina"), o.logTexts(o.coord, "Mina"), "Kari's and the coordinator's views of Mina's log")
	})

	// The stolen laptop is refused and wipes itself; the thief's own
	// laptop, never validly enrolled, is refused.
	line := o.fail(c2, "sync")
	require.Contains(t, line, "wiped")
	require.NoFileExists(t, filepath.Join(c2, identityFile))
	line = o.fail(thief, "sync")
	t.Logf("thief's laptop: %s", line)

	// A laptop Kari gets after the theft reads the whole case, including
	// what her honest laptop wrote under the epoch keys the thief made.
	t.Run("LaterLaptop", func(t *testing.T) {
		o := o.as(t)
		k2 := o.home("k2")
		o.enrol(o.coord, k2, "kari-replacement", "Kari Nordmann")
		got := o.logTexts(k2, "Mina")
		for _, w := range []string{"k1 before theft", "k1 during theft", "k1 after revocation", "coordinator after revocation"} {
			require.Contains(t, got, w, "a new laptop's view of Mina's log")
		}
		require.NotContains(t, got, "thief during theft")
		require.NotContains(t, got, "c2 backdated during theft")
	})
}

// drillReplicaStreams returns, for every stream any table of a replica has a
// row of, the tables that hold one: the whole replica, not only its views.
func drillReplicaStreams(t *testing.T, d *Device) map[syncproto.StreamID][]string {
	t.Helper()
	rows, err := d.db().Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	rows.Close()
	out := map[syncproto.StreamID][]string{}
	for _, tb := range tables {
		var cols []string
		crows, err := d.db().Query(`SELECT name FROM pragma_table_info(?)`, tb)
		require.NoError(t, err)
		for crows.Next() {
			var c string
			require.NoError(t, crows.Scan(&c))
			cols = append(cols, c)
		}
		crows.Close()
		if !slices.Contains(cols, "stream") {
			continue
		}
		q := `SELECT DISTINCT stream FROM "` + tb + `"`
		var args []any
		if tb == "local_authors" {
			// The laptop's own batch counter outlives a purge, so that
			// its next batch after a re-assignment follows its earlier
			// ones; the chain it holds names the stream anyway.
			q += ` WHERE device != ?`
			id := d.ID()
			args = append(args, id[:])
		}
		srows, err := d.db().Query(q, args...)
		require.NoError(t, err)
		for srows.Next() {
			var b []byte
			require.NoError(t, srows.Scan(&b))
			var sid syncproto.StreamID
			copy(sid[:], b)
			out[sid] = append(out[sid], tb)
		}
		srows.Close()
	}
	require.Greater(t, len(out), 0, "no table with a stream column: the check would prove nothing")
	return out
}

// drillAssignmentScoping: a laptop holds exactly the cases of its worker.
// After an unassignment its pending edits still reach the others, and only
// then does it delete the case, rows and keys, and sign a receipt.
func drillAssignmentScoping(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	o.must(o.coord, "worker", "add", "Ola Hansen")
	k1, o1 := o.home("k1"), o.home("o1")
	k1ID := o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o.enrol(o.coord, o1, "ola-laptop", "Ola Hansen")
	mina, sara, nora, lea := o.residentAdd("Mina"), o.residentAdd("Sara"), o.residentAdd("Nora"), o.residentAdd("Lea")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Sara", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Nora", "--worker", "Ola Hansen")
	for _, r := range []string{"Mina", "Sara", "Nora", "Lea"} {
		o.must(o.coord, "log", "add", r, "--category", "practical", "--minutes", "5", "--text", "intake "+r)
	}
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	o.must(o1, "sync")
	o.must(k1, "log", "add", "Sara", "--category", "safety", "--minutes", "5", "--text", "k1 on Sara")
	o.must(k1, "sync")

	st := o.chain().State()
	dir, _ := drillStreamOfKind(st, syncproto.StreamDirectory)
	audit, _ := drillStreamOfKind(st, syncproto.StreamAudit)
	check := func(home string, residents []string, want ...syncproto.StreamID) {
		t.Helper()
		require.Equal(t, residents, o.residentNames(home), "%s lists", filepath.Base(home))
		o.with(home, func(d *Device) {
			held := drillReplicaStreams(t, d)
			for sid, tables := range held {
				require.Contains(t, append(want, dir, audit), sid, "%s holds rows of stream %s in %v", filepath.Base(home), sid, tables)
			}
			for _, sid := range want {
				require.Contains(t, held, sid, "%s lacks its resident %s", filepath.Base(home), sid)
			}
			keys := drillEpochKeys(t, d)
			for sid := range keys {
				require.Contains(t, append(want, dir, audit), sid, "%s holds a key of stream %s", filepath.Base(home), sid)
			}
		})
	}
	check(k1, []string{"Mina", "Sara"}, mina, sara)
	check(o1, []string{"Nora"}, nora)

	// The relay itself refuses Kari's laptop a case it is not assigned.
	var sign *fcrypto.SigningKey
	var relayKey fcrypto.PublicKey
	o.with(k1, func(d *Device) { sign, relayKey = d.kf.Sign, d.pc.relayKey })
	tc, err := transport.New(o.url, transport.Options{})
	require.NoError(t, err)
	tc.SetTenant(st.Tenant)
	tc.SetDevice(k1ID, sign, relayKey)
	for _, sid := range []syncproto.StreamID{nora, lea} {
		_, _, err = tc.PullBatches(context.Background(), sid, 0, 10, 0)
		require.Equal(t, syncproto.CodeNotAssigned, syncproto.CodeOf(err), "pull of an unassigned case: %v", err)
	}
	_, _, err = tc.PullBatches(context.Background(), mina, 0, 10, 0)
	require.NoError(t, err)

	// Kari writes on Sara offline; meanwhile Sara is unassigned from her.
	o.must(k1, "log", "add", "Sara", "--category", "support_conversation", "--minutes", "40", "--text", "k1 pending on Sara")
	o.must(o.coord, "unassign", "Sara", "--worker", "Kari Nordmann")
	unassignedAt := o.head().Pos
	o.must(o.coord, "log", "add", "Sara", "--category", "practical", "--minutes", "5", "--text", "coordinator after unassign")
	o.must(o.coord, "sync")
	_, se, code := o.run(k1, "", "sync")
	require.Equal(t, 0, code, "sync after unassignment: %s", se)
	require.Contains(t, se, "removed a case this laptop is no longer assigned to")
	require.NotContains(t, se, "could not be delivered")

	// The pending edit reached the relay, written before the unassignment,
	// and the coordinator reads it.
	var delivered *drillBatch
	for _, sb := range o.batches() {
		if sb.Stream == sara && sb.Batch.Author == k1ID {
			delivered = &sb
		}
	}
	require.NotNil(t, delivered, "Kari's last edit on Sara never reached the relay")
	require.Less(t, delivered.Batch.ChainHead.Pos, unassignedAt)
	o.must(o.coord, "sync")
	got := o.logTexts(o.coord, "Sara")
	require.Contains(t, got, "k1 pending on Sara")
	require.Contains(t, got, "k1 on Sara")

	// Then Sara is gone from the laptop, rows and keys, and the laptop's
	// signed receipt is in the chain, after its edit reached the relay.
	check(k1, []string{"Mina"}, mina)
	c := o.chain()
	st = c.State()
	pos, ok := st.Streams[sara].DeletionReceipts[k1ID]
	require.True(t, ok, "no deletion receipt from Kari's laptop for Sara")
	s := c.Statement(pos)
	require.Equal(t, syncproto.SignerDevice, s.Signer)
	require.Equal(t, k1ID, s.SignerDevice)
	require.Equal(t, &syncproto.DeletionReceipt{Stream: sara, Device: k1ID}, s.Body)
	require.Greater(t, pos, unassignedAt)
	require.LessOrEqual(t, delivered.ReceivedMS, int64(s.TimeMS), "the receipt was signed before the last edit reached the relay")
	require.Empty(t, st.Streams[mina].DeletionReceipts, "a receipt for a case still assigned")
	// Ola's laptop was never touched.
	check(o1, []string{"Nora"}, nora)
	o.must(k1, "sync")
	check(k1, []string{"Mina"}, mina)
}

// drillBadInput: each mistake is one clear line on stderr, a non-zero
// exit, and no change to the chain.
func drillBadInput(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	c2, k1, k2 := o.home("c2"), o.home("k1"), o.home("k2")
	c2ID := o.enrol(o.coord, c2, "coord-laptop-2", "")
	o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o.enrol(o.coord, k2, "kari-old-laptop", "Kari Nordmann")
	o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(k1, "sync")
	var c1ID syncproto.DeviceID
	o.with(o.coord, func(d *Device) { c1ID = d.ID() })

	refused := func(home, want string, args ...string) {
		t.Helper()
		before := o.head()
		line := o.fail(home, args...)
		t.Logf("fristed %s: %s", strings.Join(args, " "), line)
		require.Contains(t, line, want, "fristed %s", strings.Join(args, " "))
		require.Equal(t, before, o.head(), "fristed %s changed the chain", strings.Join(args, " "))
	}
	refused(o.coord, "unknown worker", "assign", "Mina", "--worker", "Nobody Atall")
	refused(o.coord, "unknown resident", "assign", "Nobody", "--worker", "Kari Nordmann")
	refused(o.coord, "already assigned", "assign", "Mina", "--worker", "Kari Nordmann")
	refused(o.coord, "unknown device", "device", "revoke", "no-such-laptop")
	refused(o.coord, "want a chain position", "device", "revoke", "kari-old-laptop", "--compromised-since", "yesterday")
	// A worker laptop signs no admin statement.
	refused(k1, "only a coordinator device", "worker", "add", "Mallory")
	refused(k1, "only a coordinator device", "assign", "Mina", "--worker", "Kari Nordmann")
	refused(k1, "only a coordinator device", "device", "revoke", "kari-old-laptop")
	refused(k1, "only a coordinator device", "resident", "add", "--pseudonym", "X", "--arrived", "2026-11-01")
	// Revoking twice.
	o.must(o.coord, "device", "revoke", "kari-old-laptop")
	refused(o.coord, "already revoked", "device", "revoke", "kari-old-laptop")
	// A coordinator laptop needs the recovery file, with its passphrase.
	refused(o.coord, "needs the org recovery file", "device", "revoke", "coord-laptop-2")
	bad := filepath.Join(o.dir, "wrong-recovery-passphrase")
	require.NoError(t, os.WriteFile(bad, []byte("not it\n"), 0o600))
	refused(o.coord, "recovery", "device", "revoke", "coord-laptop-2", "--recovery", o.recovery, "--recovery-passphrase-file", bad)
	refused(o.coord, "compromised-since", append([]string{"device", "revoke", "coord-laptop-2", "--compromised-since", "100000"}, o.recoveryFlags()...)...)
	o.must(o.coord, append([]string{"device", "revoke", c2ID.String()}, o.recoveryFlags()...)...)
	// The last coordinator laptop.
	refused(o.coord, "cannot revoke its own laptop", append([]string{"device", "revoke", c1ID.String()}, o.recoveryFlags()...)...)

	// Nor does the relay take a root-signed revocation of the last
	// coordinator laptop, should a client try.
	rec, err := OpenRecovery(o.recovery, []byte(drillRecovery))
	require.NoError(t, err)
	c := o.chain()
	before, _ := c.Head()
	s := c.Next(c.State().Tenant, syncproto.SignerRoot, syncproto.DeviceID{}, uint64(time.Now().UnixMilli()), &syncproto.DeviceRevoked{Device: c1ID})
	require.NoError(t, s.Sign(rec.root))
	raw, err := s.Marshal()
	require.NoError(t, err)
	o.with(o.coord, func(d *Device) {
		tc, err := d.client()
		require.NoError(t, err)
		_, err = tc.PostStatement(context.Background(), raw)
		require.Error(t, err, "the relay took a revocation of the last coordinator laptop")
		t.Logf("relay: %v", err)
	})
	require.Equal(t, before, o.head())
	o.must(o.coord, "sync")
	o.must(k1, "sync")
}

// drillBackdatedLog writes a log entry on a stream from d, sealed under the
// current epoch but naming the chain head at pos, and pushes it: what a
// thief holding a device's keys can do to make an edit look older.
func drillBackdatedLog(t *testing.T, d *Device, stream syncproto.StreamID, pos syncproto.ChainPos, text string) {
	t.Helper()
	ctx := context.Background()
	_, err := d.LogAdd(stream.String(), "practical", 5, text)
	require.NoError(t, err)
	var raw []byte
	require.NoError(t, d.db().QueryRow(`SELECT delta FROM local_outbox WHERE stream = ? ORDER BY n DESC LIMIT 1`, stream[:]).Scan(&raw))
	dl, err := syncproto.UnmarshalDelta(raw)
	require.NoError(t, err)
	ep := d.chain.State().Streams[stream].Current().Epoch
	dl.Epoch = ep
	key, err := d.epochKey(stream, ep)
	require.NoError(t, err)
	counter, prev, err := d.authorState(stream, d.pc.device)
	require.NoError(t, err)
	h, ok := d.chain.HashAt(pos)
	require.True(t, ok)
	b, err := syncproto.SealBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: stream, Epoch: ep, Author: d.pc.device,
		Counter: counter + 1, Prev: prev, ChainHead: syncproto.Head{Pos: pos, Hash: h}, CreatedMS: uint64(time.Now().UnixMilli())},
		key, d.kf.Sign, []*syncproto.Delta{dl})
	require.NoError(t, err)
	braw, err := b.Marshal()
	require.NoError(t, err)
	c, err := d.client()
	require.NoError(t, err)
	_, _, err = c.PushBatch(ctx, stream, braw)
	require.NoError(t, err, "the relay refused the backdated batch")
	_, err = d.db().Exec(`DELETE FROM local_outbox WHERE id = ?`, dl.ID[:])
	require.NoError(t, err)
	bh, err := b.Hash()
	require.NoError(t, err)
	require.NoError(t, d.setAuthorState(stream, d.pc.device, counter+1, bh))
}
