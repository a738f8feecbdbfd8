package syncproto_test

import (
	"errors"
	"fmt"
	"log"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// A device verifies its tenant's admin chain against the org fingerprint
// it pinned, statement by statement, and takes access control from the
// state the chain implies.
func ExampleChain() {
	root, _ := fcrypto.GenerateSigningKey()
	relay, _ := fcrypto.GenerateSigningKey()
	coord, _ := fcrypto.NewDeviceKeys()
	laptop, _ := fcrypto.NewDeviceKeys()
	coordID := syncproto.DeviceIDFromKey(coord.Sign.Public())
	laptopID := syncproto.DeviceIDFromKey(laptop.Sign.Public())
	tenant, worker, resident := syncproto.NewTenantID(), syncproto.NewWorkerID(), syncproto.NewStreamID()

	// What org init prints, and every device pins.
	chain := syncproto.NewChain(fcrypto.OrgFingerprint(root.Public()))

	// appendSigned signs body as the chain's next statement and appends it,
	// as the relay and every device do with what they receive.
	appendSigned := func(kind syncproto.SignerKind, dev syncproto.DeviceID, key *fcrypto.SigningKey, body syncproto.Body) error {
		s := chain.Next(tenant, kind, dev, 1767225600000, body)
		if err := s.Sign(key); err != nil {
			return err
		}
		raw, err := s.Marshal()
		if err != nil {
			return err
		}
		_, err = chain.Append(raw)
		return err
	}
	key, _ := fcrypto.NewKey()
	for _, step := range []struct {
		kind syncproto.SignerKind
		dev  syncproto.DeviceID
		key  *fcrypto.SigningKey
		body syncproto.Body
	}{
		{syncproto.SignerRoot, syncproto.DeviceID{}, root, &syncproto.TenantCreated{Root: root.Public(), Relay: relay.Public()}},
		{syncproto.SignerRoot, syncproto.DeviceID{}, root, &syncproto.CoordinatorDelegated{Device: coordID, SignPub: coord.Sign.Public(), Box: coord.Box.Recipient().String()}},
		{syncproto.SignerDevice, coordID, coord.Sign, &syncproto.WorkerAdded{Worker: worker}},
		{syncproto.SignerDevice, coordID, coord.Sign, &syncproto.DeviceEnrolled{Device: laptopID, Worker: worker, SignPub: laptop.Sign.Public(), Box: laptop.Box.Recipient().String()}},
		{syncproto.SignerDevice, coordID, coord.Sign, &syncproto.StreamCreated{Stream: resident, Kind: syncproto.StreamResident}},
		{syncproto.SignerDevice, coordID, coord.Sign, &syncproto.Assigned{Stream: resident, Worker: worker}},
		{syncproto.SignerDevice, coordID, coord.Sign, &syncproto.EpochStarted{Stream: resident, Epoch: 1,
			Devices:    syncproto.SortDevices([]syncproto.DeviceID{coordID, laptopID}),
			Commitment: syncproto.Hash(key.Commitment(syncproto.EpochKeyContext(tenant, resident, 1)))}},
	} {
		if err := appendSigned(step.kind, step.dev, step.key, step.body); err != nil {
			log.Fatal(err)
		}
	}
	st := chain.State()
	fmt.Println("statements:", chain.Len())
	fmt.Println("laptop reads the case:", st.CanRead(laptopID, resident))

	// A worker's laptop has no authority to assign.
	err := appendSigned(syncproto.SignerDevice, laptopID, laptop.Sign, &syncproto.Unassigned{Stream: resident, Worker: worker})
	fmt.Println("laptop unassigns:", errors.Is(err, syncproto.ErrUnauthorized))

	// A device that saw more history than the relay now shows notices.
	head, _ := chain.Head()
	head.Pos += 3
	fmt.Println("rolled back:", errors.Is(chain.CheckHead(head), syncproto.ErrRollback))
	// Output:
	// statements: 7
	// laptop reads the case: true
	// laptop unassigns: true
	// rolled back: true
}

// A device seals its edits for one stream under the epoch key and signs the
// batch once; a receiving device verifies the signature and opens every
// delta, or gets nothing.
func ExampleSealBatch() {
	author, _ := fcrypto.GenerateSigningKey()
	key, _ := fcrypto.NewKey() // the stream's epoch key, unwrapped earlier
	hdr := syncproto.Batch{
		Tenant:  syncproto.NewTenantID(),
		Stream:  syncproto.NewStreamID(),
		Epoch:   1,
		Author:  syncproto.DeviceIDFromKey(author.Public()),
		Counter: 1,
	}
	edit := func(field, value string) *syncproto.Delta {
		return &syncproto.Delta{Tenant: hdr.Tenant, Stream: hdr.Stream, Epoch: hdr.Epoch, Author: hdr.Author,
			ID: syncproto.NewDeltaID(), Clock: syncproto.HLC{WallMS: 1767225600000},
			Ops: []syncproto.Op{{Type: syncproto.OpSet, Kind: "resident", Field: field, Value: []byte(value)}}}
	}
	batch, err := syncproto.SealBatch(hdr, key, author, []*syncproto.Delta{edit("pseudonym", "Mina"), edit("unit", "north")})
	if err != nil {
		log.Fatal(err)
	}
	wire, err := batch.Marshal()
	if err != nil {
		log.Fatal(err)
	}

	received, err := syncproto.UnmarshalBatch(wire)
	if err != nil {
		log.Fatal(err)
	}
	deltas, err := syncproto.OpenBatch(received, key, author.Public())
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range deltas {
		fmt.Printf("%s = %s\n", d.Ops[0].Field, d.Ops[0].Value)
	}

	// A relay that drops a delta cannot make the batch verify.
	received.Deltas = received.Deltas[:1]
	deltas, err = syncproto.OpenBatch(received, key, author.Public())
	fmt.Println(len(deltas), err)
	// Output:
	// pseudonym = Mina
	// unit = north
	// 0 verify batch: signature does not verify
}
