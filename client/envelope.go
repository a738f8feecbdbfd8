package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

const (
	kindAlarm     = "alarm"      // directory: alarm id -> resident, police contact, secret hash, generation
	kindAlarmCard = "alarm_card" // resident stream: what the last sealed card says (its hash)
)

// PoliceKeygen writes a new hybrid post-quantum age identity to path in the
// stock age identity file format (mode 0600; an existing file is never
// overwritten) and returns its recipient.
func PoliceKeygen(path string) (string, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return "", fmt.Errorf("police keygen: %w", err)
	}
	rcpt := id.Recipient().String()
	content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), rcpt, id.String())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("police keygen: %s exists; not overwriting it", path)
		}
		return "", fmt.Errorf("police keygen: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("police keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("police keygen: %w", err)
	}
	return rcpt, nil
}

// PoliceAdd registers a police contact: a random contact id in the chain,
// the name and age recipient only in the encrypted directory. It returns
// the contact id and the recipient's fingerprint (to confirm by phone).
func (d *Device) PoliceAdd(ctx context.Context, name, recipient string) (syncproto.ContactID, string, error) {
	if err := d.requireCoordinator(); err != nil {
		return syncproto.ContactID{}, "", err
	}
	name, recipient = strings.TrimSpace(name), strings.TrimSpace(recipient)
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\n\r\t") {
		return syncproto.ContactID{}, "", errors.New("police add: a name of 1 to 200 characters on one line is required")
	}
	if _, err := fcrypto.ParsePoliceRecipient(recipient); err != nil {
		return syncproto.ContactID{}, "", fmt.Errorf("police add: --recipient: %w (want age1... or age1pq1...)", err)
	}
	if err := d.refreshChain(ctx); err != nil {
		return syncproto.ContactID{}, "", err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return syncproto.ContactID{}, "", err
	}
	if _, _, err := d.policeByName(name); err == nil {
		return syncproto.ContactID{}, "", fmt.Errorf("police add: a police contact named %q exists", name)
	}
	id := syncproto.NewContactID()
	if _, err := d.postStatement(ctx, &syncproto.PoliceContactAdded{Contact: id}, nil); err != nil {
		return syncproto.ContactID{}, "", err
	}
	if err := d.setDirectory(kindPolice, syncproto.DeltaID(id), map[string]string{"name": name, "recipient": recipient}); err != nil {
		return syncproto.ContactID{}, "", err
	}
	var res SyncResult
	if err := d.push(ctx, &res); err != nil {
		return syncproto.ContactID{}, "", err
	}
	return id, fcrypto.RecipientFingerprint(recipient), d.save()
}

// policeByName finds a police contact registered in the chain by its
// directory name.
func (d *Device) policeByName(name string) (syncproto.ContactID, age.Recipient, error) {
	ls, err := d.labels(kindPolice)
	if err != nil {
		return syncproto.ContactID{}, nil, err
	}
	st := d.chain.State()
	for _, l := range ls {
		if !strings.EqualFold(l.Fields["name"], strings.TrimSpace(name)) {
			continue
		}
		id := syncproto.ContactID(l.ID)
		if _, ok := st.Contacts[id]; !ok {
			continue
		}
		r, err := fcrypto.ParsePoliceRecipient(l.Fields["recipient"])
		if err != nil {
			return id, nil, fmt.Errorf("police contact %q: %w", name, err)
		}
		return id, r, nil
	}
	return syncproto.ContactID{}, nil, fmt.Errorf("unknown police contact %q (see `fristed police add`)", name)
}

// Credential is the release credential the police keep: enough to ask the
// relay for the envelope and to check what comes back. No case data.
type Credential struct {
	Alarm    string `json:"alarm"`
	Tenant   string `json:"tenant"`
	Secret   string `json:"secret"` // base64, 32 bytes
	Relay    string `json:"relay"`
	RelayPin string `json:"relay_pin"`
	RelayKey string `json:"relay_key"`
	Org      string `json:"org"`
}

// CredentialFile is the name `envelope seal` writes the credential to.
func CredentialFile(alarm syncproto.AlarmID) string {
	return "fristed-alarm-" + alarm.String() + ".json"
}

type parsedCredential struct {
	alarm    syncproto.AlarmID
	tenant   syncproto.TenantID
	secret   []byte
	relay    string
	pin      string
	relayKey fcrypto.PublicKey
	org      fcrypto.Fingerprint
}

// ReadCredential reads and checks a credential file.
func ReadCredential(path string) (*Credential, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credential: %w", err)
	}
	var c Credential
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("credential %s: malformed (truncated or edited?)", filepath.Base(path))
	}
	if _, err := c.parse(); err != nil {
		return nil, fmt.Errorf("credential %s: %w", filepath.Base(path), err)
	}
	return &c, nil
}

func (c *Credential) parse() (*parsedCredential, error) {
	p := &parsedCredential{relay: c.Relay, pin: c.RelayPin}
	var err error
	if p.alarm, err = syncproto.ParseAlarmID(c.Alarm); err != nil {
		return nil, errors.New("malformed alarm id")
	}
	if p.tenant, err = syncproto.ParseTenantID(c.Tenant); err != nil {
		return nil, errors.New("malformed tenant id")
	}
	if p.secret, err = base64.StdEncoding.DecodeString(c.Secret); err != nil || len(p.secret) != 32 {
		return nil, errors.New("malformed secret")
	}
	if p.relayKey, err = fcrypto.ParsePublicKey(c.RelayKey); err != nil {
		return nil, errors.New("malformed relay key")
	}
	if p.org, err = fcrypto.ParseFingerprint(c.Org); err != nil {
		return nil, errors.New("malformed org fingerprint")
	}
	if c.Relay == "" {
		return nil, errors.New("no relay url")
	}
	if strings.HasPrefix(c.Relay, "https:") && c.RelayPin == "" {
		return nil, errors.New("no relay pin for an https relay")
	}
	return p, nil
}

// SealResult is what `envelope seal` reports.
type SealResult struct {
	Alarm          syncproto.AlarmID
	Generation     uint32
	CredentialPath string
	CheckCode      string
	Resealed       bool
}

// EnvelopeSeal builds and signs a resident's alarm card, seals it to the
// police contact and the relay's release key, commits to it in the chain,
// uploads it and records the alarm in the directory. The credential file
// is written in dir on the first seal; a re-seal of the same resident for
// the same contact reuses the alarm id and the credential (whose secret's
// hash the directory keeps; an alarm sealed before it did needs the
// credential file in dir).
func (d *Device) EnvelopeSeal(ctx context.Context, resident, police, dir string) (*SealResult, error) {
	if err := d.requireCoordinator(); err != nil {
		return nil, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return nil, err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return nil, err
	}
	sid, err := d.resolveResident(resident)
	if err != nil {
		return nil, err
	}
	contact, policeRcpt, err := d.policeByName(police)
	if err != nil {
		return nil, err
	}
	res := &SealResult{CheckCode: d.pc.org.CheckCode()}
	alarm, found, err := d.alarmFor(sid, contact)
	if err != nil {
		return nil, err
	}
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	var secretHash syncproto.Hash
	if found {
		res.Resealed = true
		res.CredentialPath = filepath.Join(dir, CredentialFile(alarm))
		if secretHash, err = d.alarmSecretHash(alarm); err != nil {
			cred, err := ReadCredential(res.CredentialPath)
			if err != nil {
				return nil, fmt.Errorf("re-seal of alarm %s needs its credential file %s in this directory: %w", alarm, CredentialFile(alarm), err)
			}
			p, err := cred.parse()
			if err != nil || p.alarm != alarm {
				return nil, fmt.Errorf("credential file %s is not for alarm %s", res.CredentialPath, alarm)
			}
			secretHash = syncproto.Hash(sha256.Sum256(p.secret))
		} else {
			res.CredentialPath = CredentialFile(alarm)
		}
	} else {
		alarm = syncproto.NewAlarmID()
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		secretHash = syncproto.Hash(sha256.Sum256(secret))
		// The credential first: an envelope nobody can release is worse
		// than a credential for an envelope that was never uploaded.
		if _, err := c.RelayKey(ctx); err != nil {
			return nil, err
		}
		cred := Credential{Alarm: alarm.String(), Tenant: d.pc.tenant.String(), Secret: base64.StdEncoding.EncodeToString(secret),
			Relay: d.cfg.RelayURL, RelayPin: c.Pin(), RelayKey: d.pc.relayKey.String(), Org: d.pc.org.String()}
		raw, _ := json.MarshalIndent(cred, "", "  ")
		clear(secret)
		res.CredentialPath = filepath.Join(dir, CredentialFile(alarm))
		if err := writeNew(res.CredentialPath, append(raw, '\n')); err != nil {
			return nil, fmt.Errorf("write credential: %w", err)
		}
	}
	res.Alarm = alarm
	committed := found
	defer func() {
		// Until the chain commits to a new alarm, a failed seal leaves no
		// credential behind for an alarm that does not exist.
		if !committed {
			os.Remove(res.CredentialPath)
		}
	}()
	gen, err := d.sealGeneration(ctx, sid, alarm, contact, policeRcpt, secretHash, func() { committed = true })
	if err != nil {
		return nil, err
	}
	res.Generation = gen
	return res, nil
}

// sealGeneration seals the next generation of an alarm's envelope from the
// case as it is now: card, release key (which destroys every earlier
// release identity of the alarm on the relay), statement, upload, and the
// directory record. committed is called once the chain holds the new
// generation's statement.
func (d *Device) sealGeneration(ctx context.Context, sid syncproto.StreamID, alarm syncproto.AlarmID, contact syncproto.ContactID,
	policeRcpt age.Recipient, secretHash syncproto.Hash, committed func()) (uint32, error) {
	c, err := d.client()
	if err != nil {
		return 0, err
	}
	purged := d.chain.State().Streams[sid] != nil && d.chain.State().Streams[sid].Purged
	var v *replica.ResidentView
	if !purged {
		if err := d.readsWholeCase(sid); err != nil {
			return 0, fmt.Errorf("seal: %w", err)
		}
		// The card carries the sealed fields out of this laptop, to the
		// police: an export, audited first. (It is not shown here, so it
		// is not recorded as a reveal.)
		if err := d.recordExport(sid, "a sealed alarm envelope for the police"); err != nil {
			return 0, err
		}
		if v, err = d.rep.Resident(sid, true); err != nil {
			return 0, err
		}
	}
	sealedAt := d.opts.now().Truncate(time.Second)
	if prev := d.chain.State().Envelopes[alarm]; prev != nil {
		// Each generation's sealed-at is later than the one before, also
		// when a re-seal follows within the same second.
		if last := time.UnixMilli(int64(prev.SealedMS)).UTC().Truncate(time.Second); !sealedAt.After(last) {
			sealedAt = last.Add(time.Second)
		}
	}
	content := CardContent{Alarm: alarm, SealedAt: sealedAt, Purged: true, Instructions: []string{purgedInstruction}}
	if !purged {
		content = cardContent(v, alarm, sealedAt)
	}
	card, err := BuildCard(content, d.pc.device, d.kf.Sign, d.pc.org)
	if err != nil {
		return 0, err
	}
	if d.CardPreview != nil && !d.CardPreview(card) {
		return 0, errors.New("not sealed")
	}
	// Asking for the release key destroys the alarm's current release
	// identity: until the new generation is uploaded the envelope cannot
	// be released. Mark the re-seal as under way first, so a failure from
	// here on is finished by the next sync (ResealChanged).
	if prev := d.chain.State().Envelopes[alarm]; prev != nil {
		if err := d.setDirectory(kindAlarm, syncproto.DeltaID(alarm), map[string]string{
			"resident": sid.String(), "police": syncproto.DeltaID(contact).String(),
			"secret_hash": secretHash.String(), "generation": "unfinished"}); err != nil {
			return 0, err
		}
	}
	rcpt, gen, err := c.ReleaseKey(ctx, alarm)
	if err != nil {
		return 0, err
	}
	inner, outer, err := fcrypto.SealEnvelope(card, policeRcpt, rcpt)
	if err != nil {
		return 0, err
	}
	body := &syncproto.EnvelopeSealed{Alarm: alarm, Generation: gen,
		Inner: syncproto.Hash(fcrypto.InnerCommitment(inner)), SealedMS: uint64(sealedAt.UnixMilli())}
	if _, err := d.postStatement(ctx, body, nil); err != nil {
		return 0, err
	}
	committed()
	if err := c.PutEnvelope(ctx, alarm, gen, outer, secretHash); err != nil {
		return 0, err
	}
	// What the card says goes into the case (readable by those who may read
	// the case anyway), the rest into the directory.
	dir := map[string]string{
		"resident": sid.String(), "police": syncproto.DeltaID(contact).String(), "sealed_at": sealedAt.Format(time.RFC3339),
		"secret_hash": secretHash.String(), "generation": strconv.FormatUint(uint64(gen), 10)}
	if purged {
		dir["purged"] = "yes"
	} else {
		ops, err := d.rep.SetOps(sid, kindAlarmCard, syncproto.DeltaID(alarm), map[string]string{
			"sealed_at": sealedAt.Format(time.RFC3339), "content": CardContentHash(content).String()})
		if err != nil {
			return 0, err
		}
		if _, err := d.commit(sid, ops); err != nil {
			return 0, err
		}
	}
	if err := d.setDirectory(kindAlarm, syncproto.DeltaID(alarm), dir); err != nil {
		return 0, err
	}
	var sr SyncResult
	if err := d.push(ctx, &sr); err != nil {
		return 0, err
	}
	return gen, d.save()
}

// alarmFor finds the alarm sealed earlier for resident and contact.
func (d *Device) alarmFor(sid syncproto.StreamID, contact syncproto.ContactID) (syncproto.AlarmID, bool, error) {
	ls, err := d.labels(kindAlarm)
	if err != nil {
		return syncproto.AlarmID{}, false, err
	}
	st := d.chain.State()
	for _, l := range ls {
		a := syncproto.AlarmID(l.ID)
		if l.Fields["resident"] == sid.String() && l.Fields["police"] == syncproto.DeltaID(contact).String() && st.Envelopes[a] != nil {
			return a, true, nil
		}
	}
	return syncproto.AlarmID{}, false, nil
}

// alarmSecretHash is the credential secret's hash the directory keeps for
// an alarm.
func (d *Device) alarmSecretHash(alarm syncproto.AlarmID) (syncproto.Hash, error) {
	ls, err := d.labels(kindAlarm)
	if err != nil {
		return syncproto.Hash{}, err
	}
	for _, l := range ls {
		if syncproto.AlarmID(l.ID) == alarm {
			h, err := syncproto.ParseHash(l.Fields["secret_hash"])
			if err != nil || h.IsZero() {
				return syncproto.Hash{}, errors.New("no secret hash recorded")
			}
			return h, nil
		}
	}
	return syncproto.Hash{}, errors.New("unknown alarm")
}

// Resealed is one envelope re-sealed automatically.
type Resealed struct {
	Alarm      syncproto.AlarmID
	Resident   syncproto.StreamID
	Generation uint32
	Closed     bool // the new card says the case is closed
	Purged     bool // the new card says the case was deleted, and nothing else
}

// purgedInstruction is all the card of a purged case says.
const purgedInstruction = "The organisation deleted this case after its retention period: it holds no data on this alarm any more. Verify this card's check code with the organisation."

// ResealChanged re-seals every alarm envelope whose card would now say
// something else than the sealed one (a new address, threat, contact,
// instruction or description; a move-out or closing), or whose chain
// generation is not the one the directory recorded (an interrupted
// re-seal). The relay destroys the old release identity before it hands
// out the new key, so the old envelope can never be opened again; the
// alarm id and credential stay the same. only limits it to one resident.
// Coordinators only: the chain accepts "envelope sealed" from them.
func (d *Device) ResealChanged(ctx context.Context, only *syncproto.StreamID) ([]Resealed, error) {
	if d.cfg.Role != RoleCoordinator {
		return nil, nil
	}
	ls, err := d.labels(kindAlarm)
	if err != nil {
		return nil, err
	}
	st := d.chain.State()
	var out []Resealed
	var errs []error
	for _, l := range ls {
		alarm := syncproto.AlarmID(l.ID)
		env := st.Envelopes[alarm]
		sid, err := syncproto.ParseStreamID(l.Fields["resident"])
		if err != nil || env == nil || (only != nil && *only != sid) {
			continue
		}
		str, ok := st.Streams[sid]
		if !ok {
			continue
		}
		var due bool
		if str.Purged {
			// The case is gone: its card must go too, for a card that
			// says so and nothing else.
			due = l.Fields["purged"] != "yes" || l.Fields["generation"] != strconv.FormatUint(uint64(env.Generation), 10)
		} else {
			if err := d.readsWholeCase(sid); err != nil {
				// A card built from part of the case would replace a good one.
				errs = append(errs, fmt.Errorf("alarm %s: %w", alarm, err))
				continue
			}
			if due, err = d.resealDue(l, sid, alarm, env.Generation); err != nil {
				errs = append(errs, fmt.Errorf("alarm %s: %w", alarm, err))
				continue
			}
		}
		if !due {
			continue
		}
		secretHash, err := syncproto.ParseHash(l.Fields["secret_hash"])
		if err != nil || secretHash.IsZero() {
			errs = append(errs, fmt.Errorf("alarm %s changed but was sealed before the directory kept its secret's hash: re-seal it with fristed envelope seal beside its credential file", alarm))
			continue
		}
		contact := syncproto.ContactID(mustDeltaID(l.Fields["police"]))
		rcpt, err := d.policeRecipient(contact)
		if err != nil {
			errs = append(errs, fmt.Errorf("alarm %s: %w", alarm, err))
			continue
		}
		gen, err := d.sealGeneration(ctx, sid, alarm, contact, rcpt, secretHash, func() {})
		if err != nil {
			errs = append(errs, fmt.Errorf("re-seal alarm %s: %w", alarm, err))
			continue
		}
		r := Resealed{Alarm: alarm, Resident: sid, Generation: gen, Purged: str.Purged}
		if !str.Purged {
			v, _ := d.rep.Resident(sid, false)
			r.Closed = v != nil && caseClosed(v)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// resealNotices runs ResealChanged and says on stderr what it did; a
// failure is a notice too (the change is still due, so the next sync
// tries again), never a failed sync or close.
func (d *Device) resealNotices(ctx context.Context, only *syncproto.StreamID) {
	done, err := d.ResealChanged(ctx, only)
	for _, r := range done {
		why := "the card's data changed"
		if r.Purged {
			why = "the case was purged; the new card says so and holds nothing else"
		} else if r.Closed {
			why = "the case is closed; the new card says so and holds no address"
		}
		d.opts.notice("alarm envelope %s re-sealed (generation %d): %s; the old envelope can no longer be opened, the police keep their credential", r.Alarm, r.Generation, why)
	}
	if err == nil {
		d.resealFailed = ""
		return
	}
	if msg := err.Error(); msg != d.resealFailed {
		d.resealFailed = msg
		d.opts.notice("an alarm envelope is due for re-sealing and was not re-sealed (tried again at the next sync): %v", err)
	}
}

// readsWholeCase says whether this device holds every key of a resident's
// stream and the resident record: only then is a card built from its
// replica the whole case (a coordinator recovered or enrolled a moment ago
// may not have been given every key yet).
func (d *Device) readsWholeCase(sid syncproto.StreamID) error {
	str := d.chain.State().Streams[sid]
	if str == nil || len(str.Epochs) == 0 {
		return errors.New("the case has no key yet")
	}
	for _, ep := range str.Epochs {
		if _, err := d.epochKey(sid, ep.Epoch); err != nil {
			return errors.New("this laptop cannot read the whole case yet (a key is missing); not re-sealed here")
		}
	}
	v, err := d.rep.Resident(sid, false)
	if err != nil || v.Fields["pseudonym"] == "" {
		return errors.New("this laptop has not received the case yet; not re-sealed here")
	}
	return nil
}

// resealDue says whether the case's card now differs from the sealed one.
func (d *Device) resealDue(l label, sid syncproto.StreamID, alarm syncproto.AlarmID, chainGen uint32) (bool, error) {
	if l.Fields["generation"] != strconv.FormatUint(uint64(chainGen), 10) {
		return true, nil
	}
	v, err := d.rep.Resident(sid, true)
	if err != nil {
		return false, err
	}
	sealed := ""
	for _, r := range v.Records[kindAlarmCard] {
		if r.ID == syncproto.DeltaID(alarm) {
			sealed = r.Fields["content"]
		}
	}
	return CardContentHash(cardContent(v, alarm, time.Time{})).String() != sealed, nil
}

// policeRecipient is a registered police contact's age recipient.
func (d *Device) policeRecipient(contact syncproto.ContactID) (age.Recipient, error) {
	if _, ok := d.chain.State().Contacts[contact]; !ok {
		return nil, errors.New("its police contact is not in the chain")
	}
	ls, err := d.labels(kindPolice)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if syncproto.ContactID(l.ID) == contact {
			return fcrypto.ParsePoliceRecipient(l.Fields["recipient"])
		}
	}
	return nil, errors.New("its police contact is not in the directory")
}

func mustDeltaID(s string) syncproto.DeltaID {
	id, _ := syncproto.ParseDeltaID(s)
	return id
}

// caseClosed: the card of a closed case, or of a resident who moved out,
// carries no address and no threat.
func caseClosed(v *replica.ResidentView) bool {
	return v.Fields["closed"] == "yes" || v.Fields["moved_out"] != ""
}

// cardContent takes what a card says from a revealed case: the latest
// threat assessment, the contact persons, the crisis plan.
func cardContent(v *replica.ResidentView, alarm syncproto.AlarmID, sealedAt time.Time) CardContent {
	c := CardContent{Alarm: alarm, SealedAt: sealedAt, Pseudonym: v.Fields["pseudonym"], LegalName: v.Fields["legal_name"],
		Description: v.Fields["description"]}
	for _, r := range v.Records["contact"] {
		c.Contacts = append(c.Contacts, CardContact{Role: r.Fields["role"], Name: r.Fields["name"], Phone: r.Fields["phone"]})
	}
	if caseClosed(v) {
		// The police still learn who the alarm was for and whom to call,
		// but no address or threat that is no longer this org's to give.
		c.Closed = v.Fields["moved_out"]
		if c.Closed == "" {
			c.Closed = "date not recorded"
		}
		c.Instructions = []string{"The case is closed: the resident no longer lives at an address known to the organisation. Call the contact persons.",
			"Verify this card's check code with the organisation."}
		return c
	}
	c.SecretAddress, c.AddressCode = v.Fields["secret_address"], v.Fields["address_code"]
	threats := append([]replica.Record(nil), v.Records["threat"]...)
	sort.SliceStable(threats, func(i, j int) bool { return threats[i].Fields["date"] < threats[j].Fields["date"] })
	if n := len(threats); n > 0 {
		c.ThreatActors, c.ThreatVehicles = threats[n-1].Fields["actors"], threats[n-1].Fields["vehicles"]
	}
	for _, r := range v.Records["crisis"] {
		in := r.Fields["scenario"]
		if a := r.Fields["action"]; a != "" {
			in += ": " + a
		}
		c.Instructions = append(c.Instructions, in)
	}
	c.Instructions = append(c.Instructions, "Do not disclose the address. Verify this card's check code with the organisation.")
	return c
}

func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// ReleaseResult is a checked release: the inner layer (the age file for
// the police) and what to show beside it.
type ReleaseResult struct {
	Inner     []byte
	SealedAt  time.Time
	CheckCode string
	// ReleaseCode is the short form of the relay's released fact; the
	// coordinators see the same code beside the release.
	ReleaseCode string
	Generation  uint32
	Retry       bool
}

// ErrReleaseCheck means the relay's answer did not check out against the
// org fingerprint in the credential: nothing in it may be used.
var ErrReleaseCheck = errors.New("the released envelope failed its check")

// EnvelopeRelease asks the relay to release an envelope with a credential
// and checks the answer: the sealed statement must verify as part of its
// proof chain from the org's genesis, name this alarm, and commit to the
// inner layer returned. One call uses one fresh nonce for its own retries.
func EnvelopeRelease(ctx context.Context, cred *Credential) (*ReleaseResult, error) {
	p, err := cred.parse()
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	c, err := transport.New(p.relay, transport.Options{Pin: p.pin})
	if err != nil {
		return nil, err
	}
	c.SetTenant(p.tenant)
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var rel *transport.Released
	for attempt := 0; ; attempt++ {
		rel, err = c.Release(ctx, p.alarm, p.secret, nonce)
		if err == nil || attempt == 2 || !errors.Is(err, transport.ErrUnreachable) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	if err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) && we.Code == syncproto.CodeNotFound {
			return nil, errors.New("release: unknown alarm or wrong credential")
		}
		return nil, err
	}
	return checkRelease(p, rel, nonce)
}

// checkRelease checks a relay's release answer against the credential
// alone. The proof must verify from the org's genesis and end with the
// relay-signed "envelope released" fact for this request (its nonce hash),
// which the chain verifier accepts only for the latest generation sealed
// before it; the inner layer must be the one that generation's
// coordinator-signed statement commits to. An inner layer of an earlier
// generation is named as superseded.
func checkRelease(p *parsedCredential, rel *transport.Released, nonce []byte) (*ReleaseResult, error) {
	chain := syncproto.NewChain(p.org)
	var last *syncproto.Statement
	for i, raw := range rel.Proof {
		st, err := chain.Append(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: proof statement %d: %v", ErrReleaseCheck, i, err)
		}
		last = st
	}
	if !chain.State().Relay.Equal(p.relayKey) {
		return nil, fmt.Errorf("%w: the org registered another relay key than the credential's", ErrReleaseCheck)
	}
	if last == nil {
		return nil, fmt.Errorf("%w: no proof", ErrReleaseCheck)
	}
	relBody, ok := last.Body.(*syncproto.EnvelopeReleased)
	if !ok || last.Signer != syncproto.SignerRelay || relBody.Alarm != p.alarm {
		return nil, fmt.Errorf("%w: the proof does not end with the relay's release of this alarm (a replayed or superseded answer)", ErrReleaseCheck)
	}
	if relBody.Request != syncproto.ReleaseRequestHash(nonce) {
		return nil, fmt.Errorf("%w: the proof ends with a release recorded for another request (a replayed answer, possibly of a superseded envelope)", ErrReleaseCheck)
	}
	env := chain.State().Envelopes[p.alarm]
	if env == nil || !env.Released || env.ReleasedAt != last.Pos || env.Generation != relBody.Generation {
		return nil, fmt.Errorf("%w: the release fact is not for this alarm's latest generation", ErrReleaseCheck)
	}
	sealedSt, err := syncproto.UnmarshalStatement(rel.Proof[env.SealedPos])
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed statement: %v", ErrReleaseCheck, err)
	}
	body, ok := sealedSt.Body.(*syncproto.EnvelopeSealed)
	if !ok || body.Alarm != p.alarm || body.Generation != env.Generation || sealedSt.Signer != syncproto.SignerDevice {
		return nil, fmt.Errorf("%w: the sealed statement is not this alarm's", ErrReleaseCheck)
	}
	if chain.IsVoid(env.SealedPos) {
		return nil, fmt.Errorf("%w: the sealed statement was signed by a device compromised at the time", ErrReleaseCheck)
	}
	if dev := chain.State().Devices[sealedSt.SignerDevice]; dev == nil || dev.Role != syncproto.RoleCoordinator {
		return nil, fmt.Errorf("%w: the sealed statement is not a coordinator's", ErrReleaseCheck)
	}
	if err := fcrypto.CheckInner(rel.Inner, [32]byte(body.Inner)); err != nil {
		if gen, at, found := supersededGeneration(rel.Proof, p.alarm, rel.Inner); found {
			return nil, fmt.Errorf("%w: the inner layer is a superseded envelope (generation %d sealed at %s; generation %d is current)",
				ErrReleaseCheck, gen, at.Format(time.RFC3339), env.Generation)
		}
		return nil, fmt.Errorf("%w: the inner layer is not the one the coordinator sealed (someone else encrypted it)", ErrReleaseCheck)
	}
	return &ReleaseResult{Inner: rel.Inner, SealedAt: time.UnixMilli(int64(body.SealedMS)).UTC(),
		CheckCode: p.org.CheckCode(), ReleaseCode: syncproto.ReleaseCode(syncproto.HashStatement(rel.Proof[last.Pos])), Generation: env.Generation, Retry: rel.Retry}, nil
}

// supersededGeneration finds an earlier "envelope sealed" statement of
// alarm in a verified proof that commits to inner.
func supersededGeneration(proof [][]byte, alarm syncproto.AlarmID, inner []byte) (uint32, time.Time, bool) {
	want := syncproto.Hash(fcrypto.InnerCommitment(inner))
	for _, raw := range proof {
		st, err := syncproto.UnmarshalStatement(raw)
		if err != nil {
			continue
		}
		if b, ok := st.Body.(*syncproto.EnvelopeSealed); ok && b.Alarm == alarm && b.Inner == want {
			return b.Generation, time.UnixMilli(int64(b.SealedMS)).UTC(), true
		}
	}
	return 0, time.Time{}, false
}
