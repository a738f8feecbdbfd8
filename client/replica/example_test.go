package replica_test

import (
	"bytes"
	"fmt"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/syncproto"
)

// Two laptops edit the same case offline; after they exchange deltas both
// show the same value and the concurrent edit as a conflict, until a later
// set resolves it.
func Example() {
	laptop := func(n byte) (*replica.Replica, syncproto.DeviceID) {
		r, err := replica.New()
		if err != nil {
			panic(err)
		}
		var dev syncproto.DeviceID
		dev[0] = n
		return r, dev
	}
	kari, kariDev := laptop(1)
	defer kari.Close()
	ola, olaDev := laptop(2)
	defer ola.Close()
	stream := syncproto.NewStreamID()
	wall := uint64(1_714_555_800_000)
	// edit wraps ops in a delta, as the client does, and applies it locally.
	edit := func(r *replica.Replica, dev syncproto.DeviceID, ops []syncproto.Op, err error) *syncproto.Delta {
		if err != nil {
			panic(err)
		}
		wall++
		d := &syncproto.Delta{Stream: stream, Author: dev, ID: syncproto.NewDeltaID(), Clock: syncproto.HLC{WallMS: wall}, Ops: ops}
		if err := r.Apply(d); err != nil {
			panic(err)
		}
		return d
	}
	set := func(r *replica.Replica, dev syncproto.DeviceID, fields map[string]string) *syncproto.Delta {
		ops, err := r.SetOps(stream, replica.KindResident, syncproto.DeltaID{}, fields)
		return edit(r, dev, ops, err)
	}

	opened := set(kari, kariDev, map[string]string{"pseudonym": "Amal", "arrived": "2024-01-10", "secret_address": "Gata 1"})
	ola.Apply(opened)

	// Offline, both move Amal to another unit.
	k := set(kari, kariDev, map[string]string{"unit": "Nord"})
	o := set(ola, olaDev, map[string]string{"unit": "Sør"})
	ola.Apply(k)
	kari.Apply(o)

	v, _ := kari.Resident(stream, false)
	fmt.Println(v.Fields["pseudonym"], v.Fields["secret_address"], v.Fields["planned_move_out"])
	fmt.Println("unit:", v.Fields["unit"], "conflict:", v.Conflicts[0].Values)

	// Kari settles it: her set supersedes both values.
	ola.Apply(set(kari, kariDev, map[string]string{"unit": "Nord"}))
	v, _ = ola.Resident(stream, false)
	fmt.Println("unit:", v.Fields["unit"], "conflicts:", len(v.Conflicts))

	a, _ := kari.Dump(stream)
	b, _ := ola.Dump(stream)
	fmt.Println("same state:", bytes.Equal(a, b))
	// Output:
	// Amal •••• (sealed) 2024-07-10
	// unit: Sør conflict: [Sør Nord]
	// unit: Nord conflicts: 0
	// same state: true
}

func ExampleValidateField() {
	fmt.Println(replica.ValidateField("resident", "address_code", "5"))
	fmt.Println(replica.ValidateField("log", "minutes", "0"))
	fmt.Println(replica.ValidateField("goal", "due", "2024-09-01"))
	// Output:
	// resident: field "address_code": want one of (6, 7, none)
	// log: field "minutes": want a positive whole number of minutes
	// <nil>
}
