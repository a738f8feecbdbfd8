package syncproto

import (
	"errors"
	"slices"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// requireRefused appends raw and requires err want, with the chain, its head
// and its state unchanged.
func requireRefused(t *testing.T, c *Chain, raw []byte, want error) {
	t.Helper()
	n := c.Len()
	head, _ := c.Head()
	state := c.State().Clone()
	s, err := c.Append(raw)
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	require.Nil(t, s)
	require.Equal(t, n, c.Len(), "length after a refused statement")
	h, _ := c.Head()
	require.Equal(t, head, h, "head after a refused statement")
	require.Equal(t, state, c.State(), "state after a refused statement")
}

// replay appends raws to a fresh chain and returns the index of the first
// refused statement and its error, or -1.
func replay(org fcrypto.Fingerprint, raws [][]byte) (*Chain, int, error) {
	c := NewChain(org)
	for i, raw := range raws {
		if _, err := c.Append(raw); err != nil {
			return c, i, err
		}
	}
	return c, -1, nil
}

func TestChainOrder(t *testing.T) {
	o := newBaseOrg(t)
	genesisOther := newTestOrg(t, "other")
	tests := []struct {
		name string
		raws [][]byte
		at   int
		want error
	}{
		{"reordered", func() [][]byte { r := slices.Clone(o.raws); r[2], r[3] = r[3], r[2]; return r }(), 2, ErrChainBroken},
		{"last two reordered", func() [][]byte { r := slices.Clone(o.raws); n := len(r); r[n-2], r[n-1] = r[n-1], r[n-2]; return r }(), len(o.raws) - 2, ErrChainBroken},
		{"duplicated", slices.Insert(slices.Clone(o.raws), 4, o.raws[3]), 4, ErrChainBroken},
		{"last duplicated", append(slices.Clone(o.raws), o.raws[len(o.raws)-1]), len(o.raws), ErrChainBroken},
		{"genesis replayed", append(slices.Clone(o.raws), o.raws[0]), len(o.raws), ErrChainBroken},
		{"gap", slices.Delete(slices.Clone(o.raws), 3, 4), 3, ErrChainBroken},
		{"starts after genesis", o.raws[1:], 0, ErrChainBroken},
		{"another org's genesis", append([][]byte{genesisOther.raws[0]}, o.raws[1:]...), 0, ErrFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, at, err := replay(o.org(), tt.raws)
			if at != tt.at {
				t.Fatalf("refused at %d (%v), want %d", at, err, tt.at)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if CodeOf(err) == CodeInternal {
				t.Errorf("got code %s, want a specific one", CodeOf(err))
			}
		})
	}
	// The same statements in order verify.
	_, at, err := replay(o.org(), o.raws)
	require.NoError(t, err)
	require.Equal(t, -1, at)
}

func TestChainAppendRefusalLeavesChainUnchanged(t *testing.T) {
	o := newBaseOrg(t)
	requireRefused(t, o.chain, o.raws[3], ErrChainBroken)
	requireRefused(t, o.chain, []byte{Version, byte(MsgStatement)}, ErrTruncated)
	requireRefused(t, o.chain, mustMarshal(t, o.next(as(o.c), &Assigned{Stream: o.s, Worker: o.w1})), ErrInvalid)
	// A statement that fails apply after passing its checks must not have
	// changed anything either: an epoch naming a device that is not active.
	bad := o.epochBody(o.s, 2, o.c, o.d1)
	bad.Devices = SortDevices(append(bad.Devices, newTestDevice(t, "mallory").id))
	requireRefused(t, o.chain, mustMarshal(t, o.next(as(o.c), bad)), ErrInvalid)
	require.Len(t, o.chain.State().Streams[o.s].Epochs, 1)
}

// TestChainSigners: who may sign what.
func TestChainSigners(t *testing.T) {
	tests := []struct {
		name  string
		build func(o *baseOrg) (signer, Body)
		want  error
	}{
		{"revoked device", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			return as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("c")}
		}, ErrRevokedSigner},
		{"revoked coordinator", func(o *baseOrg) (signer, Body) {
			o.withCoord2()
			o.add(asRoot, &DeviceRevoked{Device: o.c2.id})
			return as(o.c2), &WorkerAdded{Worker: testWorkerID("w3")}
		}, ErrRevokedSigner},
		{"unknown device", func(o *baseOrg) (signer, Body) {
			return as(newTestDevice(t, "mallory")), &WorkerAdded{Worker: testWorkerID("w3")}
		}, ErrUnknownSigner},
		{"worker device assigns", func(o *baseOrg) (signer, Body) {
			return as(o.d1), &Assigned{Stream: o.s, Worker: o.w2}
		}, ErrUnauthorized},
		{"worker device purges a case", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &CaseClosed{Stream: o.s})
			o.now += DefaultRetentionDays * dayMS
			return as(o.d1), &StreamPurged{Stream: o.s}
		}, ErrUnauthorized},
		{"root purges a case", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &CaseClosed{Stream: o.s})
			o.now += DefaultRetentionDays * dayMS
			return asRoot, &StreamPurged{Stream: o.s}
		}, ErrUnauthorized},
		{"worker device enrols", func(o *baseOrg) (signer, Body) {
			return as(o.d1), enrolBody(newTestDevice(t, "dev1b"), o.w1)
		}, ErrUnauthorized},
		{"worker device names the audit recipient", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.epoch(o.c, a, 1, o.c)
			return as(o.d1), &AuditRecipient{Stream: a, Epoch: 1, Recipient: testAuditRecipient(t, o.tenant, a, 1)}
		}, ErrUnauthorized},
		{"worker device starts an epoch", func(o *baseOrg) (signer, Body) {
			return as(o.d1), o.epochBody(o.s, 2, o.c, o.d1)
		}, ErrUnauthorized},
		{"worker device revokes", func(o *baseOrg) (signer, Body) {
			o.withDev2()
			return as(o.d1), &DeviceRevoked{Device: o.d2.id}
		}, ErrUnauthorized},
		{"worker device signs another's deletion receipt", func(o *baseOrg) (signer, Body) {
			o.withDev2()
			return as(o.d1), &DeletionReceipt{Stream: o.s, Device: o.d2.id}
		}, ErrUnauthorized},
		{"coordinator revokes a coordinator", func(o *baseOrg) (signer, Body) {
			o.withCoord2()
			return as(o.c), &DeviceRevoked{Device: o.c2.id}
		}, ErrUnauthorized},
		{"coordinator revokes itself", func(o *baseOrg) (signer, Body) {
			o.withCoord2()
			return as(o.c), &DeviceRevoked{Device: o.c.id}
		}, ErrUnauthorized},
		{"coordinator delegates a coordinator", func(o *baseOrg) (signer, Body) {
			d := newTestDevice(t, "coord2")
			return as(o.c), &CoordinatorDelegated{Device: d.id, SignPub: d.sign.Public(), Box: d.recipient()}
		}, ErrUnauthorized},
		{"coordinator writes a relay fact", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("i")})
			return as(o.c), &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, Request: testHash("r")}
		}, ErrUnauthorized},
		{"relay enrols", func(o *baseOrg) (signer, Body) {
			return asRelay, enrolBody(newTestDevice(t, "mallory"), o.w1)
		}, ErrUnauthorized},
		{"relay revokes", func(o *baseOrg) (signer, Body) {
			return asRelay, &DeviceRevoked{Device: o.d1.id}
		}, ErrUnauthorized},
		{"relay assigns", func(o *baseOrg) (signer, Body) {
			return asRelay, &Assigned{Stream: o.s, Worker: o.w2}
		}, ErrUnauthorized},
		{"root adds a worker", func(o *baseOrg) (signer, Body) {
			return asRoot, &WorkerAdded{Worker: testWorkerID("w3")}
		}, ErrUnauthorized},
		{"root starts an epoch", func(o *baseOrg) (signer, Body) {
			return asRoot, o.epochBody(o.s, 2, o.c, o.d1)
		}, ErrUnauthorized},
		{"second genesis", func(o *baseOrg) (signer, Body) {
			return asRoot, &TenantCreated{Root: o.root.Public(), Relay: o.relay.Public()}
		}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newBaseOrg(t)
			by, body := tt.build(o)
			requireRefused(t, o.chain, mustMarshal(t, o.next(by, body)), tt.want)
		})
	}

	// And what they may sign.
	o := newBaseOrg(t).withCoord2().withDev2()
	o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("c")})
	o.add(as(o.d1), &DeletionReceipt{Stream: o.s, Device: o.d1.id})
	o.add(as(o.c), &DeviceRevoked{Device: o.d2.id})
	o.add(asRelay, &DeviceRefused{Device: o.d2.id})
	o.add(asRoot, &DeviceRevoked{Device: o.c2.id})
	c3 := o.coordinator("coord3")
	o.add(as(c3), &WorkerAdded{Worker: testWorkerID("w3")})
}

// TestSignatureLabels: a signature made for one role never verifies in
// another.
func TestSignatureLabels(t *testing.T) {
	o := newBaseOrg(t)
	s := o.next(as(o.c), &WorkerAdded{Worker: testWorkerID("w3")})
	body, err := s.signedBody()
	require.NoError(t, err)
	for _, l := range []fcrypto.Label{fcrypto.LabelAuth, fcrypto.LabelBatch, fcrypto.LabelSnapshot, fcrypto.LabelCard,
		fcrypto.LabelReceipt, fcrypto.LabelEnrol, fcrypto.LabelAudit} {
		sig, err := o.c.sign.Sign(l, body)
		require.NoError(t, err)
		forged := *s
		forged.Sig = sig
		if err := forged.VerifySig(o.c.sign.Public()); !errors.Is(err, fcrypto.ErrBadSignature) {
			t.Errorf("statement signed under %s: got %v, want %v", l, err, fcrypto.ErrBadSignature)
		}
		requireRefused(t, o.chain, mustMarshal(t, &forged), fcrypto.ErrBadSignature)
	}

	b := o.testBatch(o.d1, o.s, 1, o.head(), "a", "b")
	bbody, err := b.signedBody()
	require.NoError(t, err)
	for _, l := range []fcrypto.Label{fcrypto.LabelAuth, fcrypto.LabelStatement, fcrypto.LabelSnapshot, fcrypto.LabelReceipt} {
		forged := *b
		forged.Sig, err = o.d1.sign.Sign(l, bbody)
		require.NoError(t, err)
		if _, err := OpenBatch(&forged, testEpochKey(t, o.s, 1), o.d1.sign.Public()); !errors.Is(err, fcrypto.ErrBadSignature) {
			t.Errorf("batch signed under %s: got %v, want %v", l, err, fcrypto.ErrBadSignature)
		}
	}

	// A login answer is built by the device itself: even over a
	// statement's bytes, it does not make a statement.
	a := &AuthProof{Tenant: o.tenant, Device: o.c.id, Relay: o.relay.Public(), Nonce: testHash("n")}
	require.NoError(t, a.Sign(o.c.sign))
	forged := *s
	forged.Sig = a.Sig
	requireRefused(t, o.chain, mustMarshal(t, &forged), fcrypto.ErrBadSignature)
}

// TestChainInvalid: statements that contradict the chain.
func TestChainInvalid(t *testing.T) {
	tests := []struct {
		name  string
		build func(o *baseOrg) (signer, Body)
	}{
		{"device enrolled twice", func(o *baseOrg) (signer, Body) { return as(o.c), enrolBody(o.d1, o.w1) }},
		{"coordinator with a worker device's id", func(o *baseOrg) (signer, Body) {
			return asRoot, &CoordinatorDelegated{Device: o.d1.id, SignPub: o.d1.sign.Public(), Box: o.d1.recipient()}
		}},
		{"device for an unknown worker", func(o *baseOrg) (signer, Body) {
			return as(o.c), enrolBody(newTestDevice(t, "dev1b"), testWorkerID("nobody"))
		}},
		{"device for a removed worker", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &WorkerRemoved{Worker: o.w2})
			return as(o.c), enrolBody(newTestDevice(t, "dev2"), o.w2)
		}},
		{"device with a malformed recipient", func(o *baseOrg) (signer, Body) {
			b := enrolBody(newTestDevice(t, "dev1b"), o.w1)
			b.Box = "age1notarecipient"
			return as(o.c), b
		}},
		{"device with a zero key", func(o *baseOrg) (signer, Body) {
			b := enrolBody(newTestDevice(t, "dev1b"), o.w1)
			b.SignPub = fcrypto.PublicKey{}
			return as(o.c), b
		}},
		{"revoke an unknown device", func(o *baseOrg) (signer, Body) {
			return as(o.c), &DeviceRevoked{Device: newTestDevice(t, "mallory").id}
		}},
		{"revoke twice", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			return as(o.c), &DeviceRevoked{Device: o.d1.id}
		}},
		{"compromised since the revocation itself", func(o *baseOrg) (signer, Body) {
			return as(o.c), &DeviceRevoked{Device: o.d1.id, HasCompromisedSince: true, CompromisedSince: o.head().Pos + 1}
		}},
		{"worker added twice", func(o *baseOrg) (signer, Body) { return as(o.c), &WorkerAdded{Worker: o.w1} }},
		{"zero worker", func(o *baseOrg) (signer, Body) { return as(o.c), &WorkerAdded{} }},
		{"remove an unknown worker", func(o *baseOrg) (signer, Body) {
			return as(o.c), &WorkerRemoved{Worker: testWorkerID("nobody")}
		}},
		{"stream created twice", func(o *baseOrg) (signer, Body) {
			return as(o.c), &StreamCreated{Stream: o.s, Kind: StreamResident}
		}},
		{"epoch of an unknown stream", func(o *baseOrg) (signer, Body) {
			return as(o.c), o.epochBody(testStreamID("nowhere"), 1, o.c)
		}},
		{"epoch not after the current", func(o *baseOrg) (signer, Body) { return as(o.c), o.epochBody(o.s, 1, o.c, o.d1) }},
		{"first epoch 0", func(o *baseOrg) (signer, Body) {
			s := o.stream(o.c, "s2", StreamResident)
			return as(o.c), o.epochBody(s, 0, o.c)
		}},
		{"epoch without devices", func(o *baseOrg) (signer, Body) {
			b := o.epochBody(o.s, 2, o.c)
			b.Devices = nil
			return as(o.c), b
		}},
		{"epoch without commitment", func(o *baseOrg) (signer, Body) {
			b := o.epochBody(o.s, 2, o.c)
			b.Commitment = Hash{}
			return as(o.c), b
		}},
		{"epoch naming a revoked device", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			return as(o.c), o.epochBody(o.s, 2, o.c, o.d1)
		}},
		{"assigned twice", func(o *baseOrg) (signer, Body) { return as(o.c), &Assigned{Stream: o.s, Worker: o.w1} }},
		{"assign to the directory", func(o *baseOrg) (signer, Body) {
			d := o.stream(o.c, "dir", StreamDirectory)
			return as(o.c), &Assigned{Stream: d, Worker: o.w1}
		}},
		{"assign a removed worker", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &WorkerRemoved{Worker: o.w2})
			return as(o.c), &Assigned{Stream: o.s, Worker: o.w2}
		}},
		{"unassign a worker not assigned", func(o *baseOrg) (signer, Body) {
			return as(o.c), &Unassigned{Stream: o.s, Worker: o.w2}
		}},
		{"countersign an empty snapshot", func(o *baseOrg) (signer, Body) {
			return as(o.c), &SnapshotCountersigned{Stream: o.s, Seq: 3}
		}},
		{"countersign an older snapshot", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &SnapshotCountersigned{Stream: o.s, Seq: 5, Snapshot: testHash("5")})
			return as(o.c), &SnapshotCountersigned{Stream: o.s, Seq: 4, Snapshot: testHash("4")}
		}},
		{"deletion receipt for an unknown stream", func(o *baseOrg) (signer, Body) {
			return as(o.d1), &DeletionReceipt{Stream: testStreamID("nowhere"), Device: o.d1.id}
		}},
		{"purged twice", func(o *baseOrg) (signer, Body) {
			o.closeAndPurge(o.s)
			return as(o.c), &StreamPurged{Stream: o.s}
		}},
		{"purge an open case", func(o *baseOrg) (signer, Body) {
			o.now += DefaultRetentionDays * dayMS
			return as(o.c), &StreamPurged{Stream: o.s}
		}},
		{"purge a case before its retention period ends", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &SettingsChanged{RetentionDays: 30})
			o.add(as(o.c), &CaseClosed{Stream: o.s})
			o.now += 30*dayMS - 2000 // next adds one second: one second short
			return as(o.c), &StreamPurged{Stream: o.s}
		}},
		{"purge after a longer retention period was set", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &SettingsChanged{RetentionDays: 30})
			o.add(as(o.c), &CaseClosed{Stream: o.s})
			o.add(as(o.c), &SettingsChanged{RetentionDays: 60})
			o.now += 30 * dayMS
			return as(o.c), &StreamPurged{Stream: o.s}
		}},
		{"purge the audit stream", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.now += DefaultRetentionDays * dayMS
			return as(o.c), &StreamPurged{Stream: a}
		}},
		{"purge an unknown stream", func(o *baseOrg) (signer, Body) {
			return as(o.c), &StreamPurged{Stream: testStreamID("nowhere")}
		}},
		{"police contact added twice", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &PoliceContactAdded{Contact: testContactID("p")})
			return as(o.c), &PoliceContactAdded{Contact: testContactID("p")}
		}},
		{"envelope starting at generation 2", func(o *baseOrg) (signer, Body) {
			return as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 2, Inner: testHash("i")}
		}},
		{"envelope resealed at the same generation", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("i")})
			return as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("j")}
		}},
		{"envelope without commitment", func(o *baseOrg) (signer, Body) {
			return as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1}
		}},
		{"release of an unknown envelope", func(o *baseOrg) (signer, Body) {
			return asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, Request: testHash("r")}
		}},
		{"released twice", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("i")})
			o.add(asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, Request: testHash("r")})
			return asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, Request: testHash("r")}
		}},
		{"release of an old generation", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("i")})
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 2, Inner: testHash("j")})
			return asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, Request: testHash("r")}
		}},
		{"release without a request", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("i")})
			return asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1}
		}},
		{"emergency card without hash", func(o *baseOrg) (signer, Body) {
			return as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a")}
		}},
		{"refusal of an active device", func(o *baseOrg) (signer, Body) {
			return asRelay, &DeviceRefused{Device: o.d1.id}
		}},
		{"checkpoint of a resident stream", func(o *baseOrg) (signer, Body) {
			return as(o.c), &AuditCheckpoint{Stream: o.s, Seq: 1, Head: testHash("h")}
		}},
		{"checkpoint going backwards", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.add(as(o.c), &AuditCheckpoint{Stream: a, Seq: 5, Head: testHash("5")})
			return as(o.c), &AuditCheckpoint{Stream: a, Seq: 4, Head: testHash("4")}
		}},
		{"audit recipient of a resident stream", func(o *baseOrg) (signer, Body) {
			return as(o.c), &AuditRecipient{Stream: o.s, Epoch: 1, Recipient: testAuditRecipient(t, o.tenant, o.s, 1)}
		}},
		{"audit recipient of a superseded epoch", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.epoch(o.c, a, 1, o.c)
			o.epoch(o.c, a, 2, o.c)
			return as(o.c), &AuditRecipient{Stream: a, Epoch: 1, Recipient: testAuditRecipient(t, o.tenant, a, 1)}
		}},
		{"audit recipient named twice", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.epoch(o.c, a, 1, o.c)
			o.add(as(o.c), &AuditRecipient{Stream: a, Epoch: 1, Recipient: testAuditRecipient(t, o.tenant, a, 1)})
			return as(o.c), &AuditRecipient{Stream: a, Epoch: 1, Recipient: testAuditRecipient(t, o.tenant, a, 1)}
		}},
		{"audit recipient that is not one", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			o.epoch(o.c, a, 1, o.c)
			return as(o.c), &AuditRecipient{Stream: a, Epoch: 1, Recipient: "age1notarecipient"}
		}},
		{"case closed twice", func(o *baseOrg) (signer, Body) {
			o.add(as(o.c), &CaseClosed{Stream: o.s})
			return as(o.c), &CaseClosed{Stream: o.s}
		}},
		{"close the audit stream", func(o *baseOrg) (signer, Body) {
			a := o.stream(o.c, "audit", StreamAudit)
			return as(o.c), &CaseClosed{Stream: a}
		}},
		{"epoch of a purged stream", func(o *baseOrg) (signer, Body) {
			o.closeAndPurge(o.s)
			return as(o.c), o.epochBody(o.s, 2, o.c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newBaseOrg(t)
			by, body := tt.build(o)
			requireRefused(t, o.chain, mustMarshal(t, o.next(by, body)), ErrInvalid)
		})
	}
}

func TestLastCoordinator(t *testing.T) {
	o := newBaseOrg(t)
	requireRefused(t, o.chain, mustMarshal(t, o.next(asRoot, &DeviceRevoked{Device: o.c.id})), ErrLastCoord)
	requireRefused(t, o.chain, mustMarshal(t, o.next(asRoot, &DeviceRevoked{Device: o.c.id, HasCompromisedSince: true, CompromisedSince: 1})), ErrLastCoord)
	o.withCoord2()
	require.Equal(t, []DeviceID{o.c.id, o.c2.id}, sortedPair(o.c.id, o.c2.id))
	require.Equal(t, sortedPair(o.c.id, o.c2.id), o.chain.State().ActiveCoordinators())
	o.add(asRoot, &DeviceRevoked{Device: o.c.id})
	requireRefused(t, o.chain, mustMarshal(t, o.next(asRoot, &DeviceRevoked{Device: o.c2.id})), ErrLastCoord)
	require.Equal(t, []DeviceID{o.c2.id}, o.chain.State().ActiveCoordinators())
	// Recovery: the root delegates a new coordinator first; then the old
	// one can go.
	c3 := o.coordinator("coord3")
	o.add(asRoot, &DeviceRevoked{Device: o.c2.id})
	require.Equal(t, []DeviceID{c3.id}, o.chain.State().ActiveCoordinators())
}

func sortedPair(a, b DeviceID) []DeviceID { return SortDevices([]DeviceID{b, a}) }

func TestCheckHead(t *testing.T) {
	o := newBaseOrg(t)
	for i := 0; i < o.chain.Len(); i++ {
		h, ok := o.chain.HashAt(ChainPos(i))
		require.True(t, ok)
		require.Equal(t, HashStatement(o.raws[i]), h)
		if err := o.chain.CheckHead(Head{Pos: ChainPos(i), Hash: h}); err != nil {
			t.Errorf("head at %d: got %v, want nil", i, err)
		}
	}
	head := o.head()
	tests := []struct {
		name string
		c    *Chain
		seen Head
		want error
	}{
		{"fork at the head", o.chain, Head{Pos: head.Pos, Hash: testHash("other")}, ErrFork},
		{"fork inside", o.chain, Head{Pos: 3, Hash: head.Hash}, ErrFork},
		{"rollback by one", func() *Chain { c, _, _ := replay(o.org(), o.raws[:len(o.raws)-1]); return c }(), head, ErrRollback},
		{"rollback to genesis", func() *Chain { c, _, _ := replay(o.org(), o.raws[:1]); return c }(), head, ErrRollback},
		{"empty chain", NewChain(o.org()), Head{}, ErrRollback},
		{"position beyond any chain", o.chain, Head{Pos: 1<<64 - 1, Hash: head.Hash}, ErrRollback},
	}
	for _, tt := range tests {
		if err := tt.c.CheckHead(tt.seen); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	// A forked history: another chain of the same org from position 4.
	alt := newTestOrg(t, "base")
	ac := alt.coordinator("coord")
	aw := alt.worker(ac, "w1")
	alt.worker(ac, "w2")
	alt.enrol(ac, "dev1b", aw)
	altHead := alt.head()
	require.Equal(t, ChainPos(4), altHead.Pos)
	if err := o.chain.CheckHead(altHead); !errors.Is(err, ErrFork) {
		t.Errorf("forked history: got %v, want %v", err, ErrFork)
	}
	if err := alt.chain.CheckHead(head); !errors.Is(err, ErrRollback) {
		t.Errorf("shorter forked history: got %v, want %v", err, ErrRollback)
	}
	_, ok := NewChain(o.org()).Head()
	require.False(t, ok)
	_, ok = o.chain.HashAt(ChainPos(o.chain.Len()))
	require.False(t, ok)
	require.Nil(t, o.chain.Statement(ChainPos(o.chain.Len())))
	require.Equal(t, o.org(), o.chain.Org())
}

// TestCompromisedSince: a revocation with a compromised-since point voids
// the device's later statements and whatever depended on them, and keeps
// what came before.
func TestCompromisedSince(t *testing.T) {
	o, void := compromisedChain(t)
	st := o.chain.State()
	planted := newTestDevice(t, "mallory")
	for i := 0; i < o.chain.Len(); i++ {
		want := slices.Contains(void, ChainPos(i))
		if got := o.chain.IsVoid(ChainPos(i)); got != want {
			t.Errorf("statement %d (%s): void %v, want %v", i, o.chain.Statement(ChainPos(i)).Body.Type(), got, want)
		}
	}
	require.False(t, o.chain.IsVoid(ChainPos(o.chain.Len())), "beyond the chain")
	if st.Devices[planted.id] != nil {
		t.Error("the device enrolled after the point is in the state")
	}
	if st.Streams[o.s].Assigned[o.w2] {
		t.Error("the assignment made after the point is in the state")
	}
	if got := st.Streams[o.s].Current().Epoch; got != 1 {
		t.Errorf("got current epoch %d, want 1 (the epoch naming the planted device is void)", got)
	}
	if st.Workers[testWorkerID("w3")] == nil {
		t.Error("the worker added at the point is missing: statements up to the point stay valid")
	}
	c2 := st.Devices[o.c2.id]
	require.True(t, c2.Revoked)
	require.True(t, c2.HasCompromisedSince)
	require.Equal(t, void[0]-1, c2.CompromisedSince)
	require.False(t, st.CanRead(planted.id, o.s))
	require.True(t, st.CanRead(o.d1.id, o.s))

	// The planted device can sign nothing more, and the honest coordinator
	// can redo what was voided.
	requireRefused(t, o.chain, mustMarshal(t, o.next(as(planted), &DeletionReceipt{Stream: o.s, Device: planted.id})), ErrUnknownSigner)
	o.add(as(o.c), &Assigned{Stream: o.s, Worker: o.w2})
	o.withDev2()
	o.epoch(o.c, o.s, 3, o.c, o.d1, o.d2)
	require.True(t, o.chain.State().CanRead(o.d2.id, o.s))
	requireReverifies(t, o.chain)
}

// TestCompromisedWorkerDevice: a worker device revoked as compromised loses
// what it signed after the point, and keeps what it signed before.
func TestCompromisedWorkerDevice(t *testing.T) {
	o := newBaseOrg(t)
	before := o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("before")})
	after := o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("after")})
	receipt := o.add(as(o.d1), &DeletionReceipt{Stream: o.s, Device: o.d1.id})
	o.add(as(o.c), &DeviceRevoked{Device: o.d1.id, HasCompromisedSince: true, CompromisedSince: before})
	require.False(t, o.chain.IsVoid(before))
	require.True(t, o.chain.IsVoid(after))
	require.True(t, o.chain.IsVoid(receipt))
	st := o.chain.State()
	require.Equal(t, []EmergencyCardWritten{{Alarm: testAlarmID("a"), Card: testHash("before")}}, st.Emergencies)
	require.Empty(t, st.Streams[o.s].DeletionReceipts)
	require.False(t, st.CanRead(o.d1.id, o.s))
	requireReverifies(t, o.chain)
}

func TestEpochStartedUnsorted(t *testing.T) {
	o := newBaseOrg(t)
	body := o.epochBody(o.s, 2, o.c, o.d1)
	body.Devices[0], body.Devices[1] = body.Devices[1], body.Devices[0]
	s := o.chain.Next(o.tenant, SignerDevice, o.c.id, 1, body)
	if err := s.Sign(o.c.sign); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Sign: got %v, want %v", err, ErrMalformed)
	}
	// Signed anyway, by hand: the decoder refuses it before any signature
	// check.
	body.Devices[0], body.Devices[1] = body.Devices[1], body.Devices[0]
	require.NoError(t, s.Sign(o.c.sign))
	raw := mustMarshal(t, s)
	devs := stmtOffBody + 16 + 4 + 2
	a := clone(raw[devs : devs+16])
	copy(raw[devs:], raw[devs+16:devs+32])
	copy(raw[devs+16:], a)
	raw = resign(t, raw, o.c.sign, fcrypto.LabelStatement)
	requireRefused(t, o.chain, raw, ErrMalformed)
	require.Equal(t, []DeviceID{{1}, {2}, {3}}, SortDevices([]DeviceID{{3}, {1}, {2}, {1}, {3}}))
	require.Empty(t, SortDevices(nil))
}

func TestChainState(t *testing.T) {
	o, _ := fullChain(t)
	st := o.chain.State()
	require.Equal(t, o.tenant, st.Tenant)
	require.Equal(t, o.root.Public(), st.Root)
	require.Equal(t, o.relay.Public(), st.Relay)
	require.Equal(t, []DeviceID{o.c.id}, st.ActiveCoordinators())
	require.Equal(t, []DeviceID{o.d1.id}, st.WorkerDevices(o.w1))
	require.Empty(t, st.WorkerDevices(o.w2))
	require.True(t, st.Workers[o.w2].Removed)
	require.False(t, st.Devices[o.c2.id].Active())
	str := st.Streams[o.s]
	require.True(t, str.Closed)
	require.True(t, str.Purged)
	require.False(t, st.CanRead(o.c.id, o.s), "a purged stream is readable by nobody")
	require.Len(t, str.Epochs, 2)
	require.Equal(t, Epoch(2), str.Current().Epoch)
	require.Nil(t, str.Epoch(3))
	require.Equal(t, map[DeviceID]ChainPos{o.d1.id: str.Epochs[1].Pos}, str.RemovedAt)
	require.Contains(t, str.DeletionReceipts, o.d1.id)
	require.Equal(t, Seq(7), str.Countersigned.Seq)
	env := st.Envelopes[testAlarmID("a")]
	require.True(t, env.Released)
	require.Equal(t, o.c.id, env.Sealer)
	require.Equal(t, uint32(3650), st.Settings.RetentionDays)
	require.Equal(t, Seq(3), st.Checkpoint.Seq)
	require.Len(t, st.Emergencies, 1)
	require.Contains(t, st.Contacts, testContactID("oslo"))

	// Clone is deep: changing the clone leaves the chain's state alone.
	cl := st.Clone()
	require.Equal(t, st, cl)
	cl.Devices[o.c.id].Revoked = true
	cl.Streams[o.s].RemovedAt[o.c.id] = 1
	cl.Streams[o.s].Countersigned.Seq = 99
	cl.Envelopes[testAlarmID("a")].Released = false
	cl.Checkpoint.Seq = 99
	cl.Workers[o.w1].Removed = true
	require.False(t, st.Devices[o.c.id].Revoked)
	require.NotContains(t, st.Streams[o.s].RemovedAt, o.c.id)
	require.Equal(t, Seq(7), st.Streams[o.s].Countersigned.Seq)
	require.True(t, st.Envelopes[testAlarmID("a")].Released)
	require.Equal(t, Seq(3), st.Checkpoint.Seq)
	require.False(t, st.Workers[o.w1].Removed)
	requireReverifies(t, o.chain)
}

func TestDeviceIDFromKey(t *testing.T) {
	a, b := newTestDevice(t, "dev1"), newTestDevice(t, "dev2")
	require.Equal(t, a.id, DeviceIDFromKey(a.sign.Public()))
	require.NotEqual(t, a.id, b.id)
	require.False(t, a.id.IsZero())
}

// TestVoidedRevocationVoidsNothing: a compromised coordinator "revoking" an
// honest worker device as compromised voids nothing once the coordinator's
// own compromise is declared: the device is active again and what it signed
// stands, now and after later rebuilds.
func TestVoidedRevocationVoidsNothing(t *testing.T) {
	o := newBaseOrg(t).withCoord2()
	cardA := o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("A")})
	bogus := o.add(as(o.c2), &DeviceRevoked{Device: o.d1.id, HasCompromisedSince: true, CompromisedSince: cardA - 1})
	require.True(t, o.chain.IsVoid(cardA))
	require.False(t, o.chain.State().Devices[o.d1.id].Active())

	o.add(asRoot, &DeviceRevoked{Device: o.c2.id, HasCompromisedSince: true, CompromisedSince: bogus - 1})
	require.True(t, o.chain.IsVoid(bogus), "the compromised coordinator's revocation")
	require.False(t, o.chain.IsVoid(cardA), "the honest device's card")
	require.True(t, o.chain.State().Devices[o.d1.id].Active())

	cardB := o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("B")})
	o.withDev2()
	o.add(as(o.c), &DeviceRevoked{Device: o.d2.id, HasCompromisedSince: true, CompromisedSince: 0})
	for _, p := range []ChainPos{cardA, cardB} {
		if o.chain.IsVoid(p) {
			t.Errorf("card at %d: got void after a later rebuild, want valid", p)
		}
	}
	require.Len(t, o.chain.State().Emergencies, 2)
	requireReverifies(t, o.chain)
}

// TestPurgeRetention: a closed case may be purged from its signed closing
// time plus the retention period the chain holds at the purge, not a
// millisecond earlier, and only once.
func TestPurgeRetention(t *testing.T) {
	o := newBaseOrg(t)
	o.add(as(o.c), &SettingsChanged{RetentionDays: 30})
	closedAt := o.add(as(o.c), &CaseClosed{Stream: o.s})
	str := o.chain.State().Streams[o.s]
	require.Equal(t, o.chain.Statement(closedAt).TimeMS, str.ClosedMS)
	due := PurgeDue(o.chain.State(), str)
	require.Equal(t, str.ClosedMS+30*dayMS, due)
	// A shorter period set after the close applies.
	o.add(as(o.c), &SettingsChanged{RetentionDays: 7})
	due = PurgeDue(o.chain.State(), str)
	require.Equal(t, str.ClosedMS+7*dayMS, due)
	early := o.chain.Next(o.tenant, SignerDevice, o.c.id, due-1, &StreamPurged{Stream: o.s})
	require.NoError(t, early.Sign(o.c.sign))
	requireRefused(t, o.chain, mustMarshal(t, early), ErrInvalid)
	onTime := o.chain.Next(o.tenant, SignerDevice, o.c.id, due, &StreamPurged{Stream: o.s})
	require.NoError(t, onTime.Sign(o.c.sign))
	_, err := o.chain.Append(mustMarshal(t, onTime))
	require.NoError(t, err)
	require.True(t, o.chain.State().Streams[o.s].Purged)
	require.False(t, o.chain.State().CanRead(o.d1.id, o.s))
}

// TestVoidEpochs: an epoch only a void statement started is listed with
// its commitment; valid epochs, and void ones whose number a valid
// statement reused, are not.
func TestVoidEpochs(t *testing.T) {
	o := newBaseOrg(t).withCoord2()
	p := o.head().Pos
	voided := o.epochBody(o.s, 2, o.c, o.c2, o.d1)
	voidedAt := o.add(as(o.c2), voided)
	o.add(as(o.c2), o.epochBody(o.s, 3, o.c, o.c2, o.d1))
	require.Empty(t, o.chain.VoidEpochs())
	o.add(asRoot, &DeviceRevoked{Device: o.c2.id, HasCompromisedSince: true, CompromisedSince: p})
	require.True(t, o.chain.IsVoid(voidedAt))
	require.Equal(t, Epoch(1), o.chain.State().Streams[o.s].Current().Epoch)
	// A valid re-key reuses number 3; number 2 stays void only.
	o.add(as(o.c), o.epochBody(o.s, 3, o.c, o.d1))
	got := o.chain.VoidEpochs()
	require.Len(t, got, 1)
	require.Len(t, got[o.s], 1)
	require.Equal(t, Epoch(2), got[o.s][0].Epoch)
	require.Equal(t, voided.Commitment, got[o.s][0].Commitment)
	require.Equal(t, voidedAt, got[o.s][0].Pos)
}
