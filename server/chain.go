package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// errUnknownTenant: no tenant with that id (or one whose chain is empty).
var errUnknownTenant = errors.New("unknown tenant")

// tenant is one tenant's admin chain, verified, in memory. The relay takes
// all access control from its State. mu guards everything: handlers read
// under RLock; appends (and catching up with statements another relay
// process appended) take the write lock.
type tenant struct {
	id  syncproto.TenantID
	org fcrypto.Fingerprint

	mu      sync.RWMutex
	chain   *syncproto.Chain
	raws    [][]byte
	refused map[syncproto.DeviceID]bool // devices named by a "device refused" fact
}

// registry holds every tenant's chain.
type registry struct {
	st store.Store

	mu    sync.Mutex
	byID  map[syncproto.TenantID]*tenant
	byOrg map[fcrypto.Fingerprint]syncproto.TenantID
}

func newRegistry(st store.Store) *registry {
	return &registry{st: st, byID: map[syncproto.TenantID]*tenant{}, byOrg: map[fcrypto.Fingerprint]syncproto.TenantID{}}
}

// loadAll verifies and loads every tenant's chain (at start).
func (g *registry) loadAll(ctx context.Context) error {
	ids, err := g.st.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := g.lookup(ctx, id); err != nil && !errors.Is(err, errUnknownTenant) {
			return err
		}
	}
	return nil
}

// lookup returns the tenant, loading it from the store if this process has
// not seen it yet; it does not catch up.
func (g *registry) lookup(ctx context.Context, id syncproto.TenantID) (*tenant, error) {
	g.mu.Lock()
	t := g.byID[id]
	g.mu.Unlock()
	if t != nil {
		return t, nil
	}
	t = &tenant{id: id}
	if err := t.reload(ctx, g.st); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if have := g.byID[id]; have != nil {
		return have, nil
	}
	g.byID[id] = t
	g.byOrg[t.org] = id
	return t, nil
}

// get returns the tenant with its chain caught up with the store: another
// relay process may have appended since this one last looked.
func (g *registry) get(ctx context.Context, id syncproto.TenantID) (*tenant, error) {
	t, err := g.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := t.sync(ctx, g.st); err != nil {
		return nil, err
	}
	return t, nil
}

// add registers a tenant whose chain was just stored.
func (g *registry) add(t *tenant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byID[t.id] = t
	g.byOrg[t.org] = t.id
}

// byFingerprint finds the tenant of an org, asking the store for tenants
// this process has not seen when it does not know it.
func (g *registry) byFingerprint(ctx context.Context, org fcrypto.Fingerprint) (syncproto.TenantID, error) {
	g.mu.Lock()
	id, ok := g.byOrg[org]
	g.mu.Unlock()
	if ok {
		return id, nil
	}
	if err := g.loadAll(ctx); err != nil {
		return syncproto.TenantID{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := g.byOrg[org]; ok {
		return id, nil
	}
	return syncproto.TenantID{}, errUnknownTenant
}

// newTenant verifies a new tenant's first statements.
func newTenant(raws [][]byte) (*tenant, error) {
	if len(raws) == 0 {
		return nil, fmt.Errorf("no genesis: %w", syncproto.ErrInvalid)
	}
	g, err := syncproto.UnmarshalStatement(raws[0])
	if err != nil {
		return nil, err
	}
	tc, ok := g.Body.(*syncproto.TenantCreated)
	if !ok || g.Pos != 0 || g.Signer != syncproto.SignerRoot {
		return nil, fmt.Errorf("genesis must be a root-signed tenant creation: %w", syncproto.ErrInvalid)
	}
	t := &tenant{id: g.Tenant, org: fcrypto.OrgFingerprint(tc.Root), refused: map[syncproto.DeviceID]bool{}}
	t.chain = syncproto.NewChain(t.org)
	for _, raw := range raws {
		s, err := t.chain.Append(raw)
		if err != nil {
			return nil, err
		}
		t.note(s, raw)
	}
	return t, nil
}

// reload rebuilds the chain from the store, verifying every statement.
func (t *tenant) reload(ctx context.Context, st store.Store) error {
	stmts, err := st.Statements(ctx, t.id, 0, 0)
	if err != nil {
		return fmt.Errorf("load chain: %w", err)
	}
	if len(stmts) == 0 {
		return errUnknownTenant
	}
	raws := make([][]byte, len(stmts))
	for i, s := range stmts {
		if s.Pos != syncproto.ChainPos(i) {
			return fmt.Errorf("load chain: statement %d stored at position %d", i, s.Pos)
		}
		raws[i] = s.Raw
	}
	n, err := newTenant(raws)
	if err != nil {
		return fmt.Errorf("verify stored chain: %w", err)
	}
	if n.id != t.id {
		return fmt.Errorf("verify stored chain: genesis names another tenant")
	}
	t.org, t.chain, t.raws, t.refused = n.org, n.chain, n.raws, n.refused
	return nil
}

// note records what the relay keeps beside the chain for a statement just
// appended.
func (t *tenant) note(s *syncproto.Statement, raw []byte) {
	t.raws = append(t.raws, raw)
	if r, ok := s.Body.(*syncproto.DeviceRefused); ok {
		t.refused[r.Device] = true
	}
}

// sync catches the chain up with the store's head.
func (t *tenant) sync(ctx context.Context, st store.Store) error {
	head, err := st.ChainHead(ctx, t.id)
	if err != nil {
		return fmt.Errorf("chain head: %w", err)
	}
	t.mu.RLock()
	local, _ := t.chain.Head()
	t.mu.RUnlock()
	if local == head {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.catchUpLocked(ctx, st, head)
}

// catchUpLocked appends the statements after the local head up to head;
// if the store's chain is not an extension of the local one (a restored
// database), it reloads it whole.
func (t *tenant) catchUpLocked(ctx context.Context, st store.Store, head syncproto.Head) error {
	local, _ := t.chain.Head()
	if local == head {
		return nil
	}
	if head.Pos > local.Pos {
		stmts, err := st.Statements(ctx, t.id, local.Pos+1, 0)
		if err != nil {
			return fmt.Errorf("catch up chain: %w", err)
		}
		ok := true
		for i, s := range stmts {
			if s.Pos != local.Pos+1+syncproto.ChainPos(i) {
				ok = false
				break
			}
			stmt, err := t.chain.Append(s.Raw)
			if err != nil {
				ok = false
				break
			}
			t.note(stmt, s.Raw)
		}
		if now, _ := t.chain.Head(); ok && now.Pos >= head.Pos {
			return nil
		}
	}
	return t.reload(ctx, st)
}

// read runs fn with the chain under the read lock. fn must not keep
// pointers into the state.
func (t *tenant) read(fn func(c *syncproto.Chain)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	fn(t.chain)
}

// statements returns raw statements [from, from+limit).
func (t *tenant) statements(from syncproto.ChainPos, limit int) (out [][]byte, head syncproto.ChainPos) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	h, _ := t.chain.Head()
	n := syncproto.ChainPos(len(t.raws))
	if from > n {
		from = n
	}
	end := n
	if limit > 0 && uint64(end-from) > uint64(limit) {
		end = from + syncproto.ChainPos(limit)
	}
	return append([][]byte(nil), t.raws[from:end]...), h.Pos
}

// appendStatement appends the statement that build makes from the current
// chain: verified in memory first, then stored at exactly its position. If
// the store refuses (another relay process appended first), the chain is
// reloaded and chain_conflict returned.
func (t *tenant) appendStatement(ctx context.Context, st store.Store, build func(c *syncproto.Chain) ([]byte, error)) (*syncproto.Statement, store.Statement, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	head, err := st.ChainHead(ctx, t.id)
	if err != nil {
		return nil, store.Statement{}, fmt.Errorf("chain head: %w", err)
	}
	if err := t.catchUpLocked(ctx, st, head); err != nil {
		return nil, store.Statement{}, err
	}
	raw, err := build(t.chain)
	if err != nil {
		return nil, store.Statement{}, err
	}
	s, err := t.chain.Append(raw)
	if err != nil {
		return nil, store.Statement{}, err
	}
	rec := store.Statement{Pos: s.Pos, Hash: syncproto.HashStatement(raw), Raw: raw}
	if err := st.AppendStatement(ctx, t.id, rec); err != nil {
		// The in-memory chain holds a statement the store does not.
		if rerr := t.reload(context.WithoutCancel(ctx), st); rerr != nil {
			return nil, store.Statement{}, errors.Join(err, rerr)
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, store.Statement{}, wire(syncproto.CodeChainConflict, "the chain moved; fetch it and sign again")
		}
		return nil, store.Statement{}, err
	}
	t.note(s, raw)
	return s, rec, nil
}
