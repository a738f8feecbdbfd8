package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// loadChain rebuilds the verifier from the statements this device stored.
// They were verified when they arrived; verifying again costs little and
// catches a replica tampered with by someone who had the keys.
func (d *Device) loadChain() error {
	d.chain = syncproto.NewChain(d.pc.org)
	rows, err := d.db().Query(`SELECT raw FROM local_chain ORDER BY pos`)
	if err != nil {
		return fmt.Errorf("load chain: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return fmt.Errorf("load chain: %w", err)
		}
		if _, err := d.chain.Append(raw); err != nil {
			return fmt.Errorf("load chain: stored statement %d: %w", d.chain.Len(), err)
		}
	}
	return rows.Err()
}

// appendChain verifies raw as the next statement and stores it.
func (d *Device) appendChain(raw []byte) (*syncproto.Statement, error) {
	st, err := d.chain.Append(raw)
	if err != nil {
		return nil, err
	}
	if _, err := d.db().Exec(`INSERT INTO local_chain (pos, raw) VALUES (?, ?)`, int64(st.Pos), raw); err != nil {
		return nil, fmt.Errorf("store statement: %w", err)
	}
	d.dirty = true
	return st, nil
}

// client returns the transport, creating it on first use.
func (d *Device) client() (*transport.Client, error) {
	if d.relay != nil {
		return d.relay, nil
	}
	c, err := transport.New(d.cfg.RelayURL, d.opts.transportOptions(d.cfg.RelayPin))
	if err != nil {
		return nil, err
	}
	c.SetTenant(d.pc.tenant)
	c.SetDevice(d.pc.device, d.kf.Sign, d.pc.relayKey)
	d.relay = c
	return c, nil
}

// refreshChain fetches statements past the local head, verifies each and
// checks that the relay's history contains what this device saw before.
func (d *Device) refreshChain(ctx context.Context) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	from := syncproto.ChainPos(d.chain.Len())
	stmts, err := c.Chain(ctx, from)
	if err != nil {
		return d.refused(err)
	}
	if len(stmts) == 0 && from > 0 {
		// The relay must at least still have what we saw: ask for our head.
		prev, err := c.Chain(ctx, from-1)
		if err != nil {
			return err
		}
		if len(prev) == 0 {
			return fmt.Errorf("%w", syncproto.ErrRollback)
		}
		if syncproto.HashStatement(prev[0]) != mustHash(d.chain, from-1) {
			return fmt.Errorf("%w", syncproto.ErrFork)
		}
	}
	defer d.checkRelayKey()
	for _, raw := range stmts {
		st, err := syncproto.UnmarshalStatement(raw)
		if err != nil {
			return fmt.Errorf("chain from relay: %w", err)
		}
		if st.Pos < syncproto.ChainPos(d.chain.Len()) {
			continue
		}
		if _, err := d.appendChain(raw); err != nil {
			if errors.Is(err, syncproto.ErrChainBroken) {
				return fmt.Errorf("%w: %v", syncproto.ErrFork, err)
			}
			return fmt.Errorf("chain from relay: %w", err)
		}
		if rel, ok := st.Body.(*syncproto.EnvelopeReleased); ok && d.cfg.Role == RoleCoordinator {
			d.opts.notice("alarm envelope %s was released to the police at %s, release code %s (see fristed audit show)",
				rel.Alarm, time.UnixMilli(int64(rel.ReleasedMS)).UTC().Format(time.RFC3339), syncproto.ReleaseCode(syncproto.HashStatement(raw)))
		}
	}
	return nil
}

func mustHash(c *syncproto.Chain, pos syncproto.ChainPos) syncproto.Hash {
	h, _ := c.HashAt(pos)
	return h
}

// postStatement signs body as this device (or with root, if given) on the
// current head and appends it on the relay. If another coordinator's
// statement won the race, it re-signs on the new head, as long as the
// statement still makes sense there.
func (d *Device) postStatement(ctx context.Context, body syncproto.Body, root *fcrypto.SigningKey) (*syncproto.Statement, error) {
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	var sent [][]byte // every signing of body that left this device
	for attempt := 0; attempt < 5; attempt++ {
		if err := d.refreshChain(ctx); err != nil {
			return nil, err
		}
		// A signing that got no answer, or a conflict that was the answer
		// to a second delivery of it, may be on the chain already: then
		// it is the statement, and signing it again on the new head would
		// post it twice (or be refused as contradicting itself).
		if st := d.landed(sent); st != nil {
			return st, nil
		}
		signer, dev, key := syncproto.SignerDevice, d.pc.device, d.kf.Sign
		if root != nil {
			signer, dev, key = syncproto.SignerRoot, syncproto.DeviceID{}, root
		}
		st := d.chain.Next(d.pc.tenant, signer, dev, uint64(d.opts.now().UnixMilli()), body)
		if err := st.Sign(key); err != nil {
			return nil, err
		}
		raw, err := st.Marshal()
		if err != nil {
			return nil, err
		}
		sent = append(sent, raw)
		if _, err = c.PostStatement(ctx, raw); err != nil {
			var we *syncproto.Error
			if errors.As(err, &we) && we.Code == syncproto.CodeChainConflict {
				continue
			}
			if errors.As(err, &we) && we.Code == syncproto.CodeInvalidStatement {
				// Perhaps refused because an earlier signing of it landed.
				if rerr := d.refreshChain(ctx); rerr == nil {
					if st := d.landed(sent); st != nil {
						return st, nil
					}
				}
			}
			return nil, err
		}
		return d.appendChain(raw)
	}
	return nil, errors.New("post statement: the chain kept moving; try again")
}

// landed returns the statement of the chain that is one of sent (each is
// signed for the position it names), or nil.
func (d *Device) landed(sent [][]byte) *syncproto.Statement {
	for _, raw := range sent {
		st, err := syncproto.UnmarshalStatement(raw)
		if err != nil || int(st.Pos) >= d.chain.Len() {
			continue
		}
		if h, ok := d.chain.HashAt(st.Pos); ok && h == syncproto.HashStatement(raw) {
			return d.chain.Statement(st.Pos)
		}
	}
	return nil
}

// checkRelayKey compares the relay key this device pinned at first contact
// with the one the org registered at genesis: a relay impersonated at first
// contact would otherwise sign receipts for this device.
func (d *Device) checkRelayKey() {
	if d.chain.Len() == 0 {
		return
	}
	if !d.chain.State().Relay.Equal(d.pc.relayKey) {
		d.relayKeyMismatch = true
	}
}
