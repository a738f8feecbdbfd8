package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "tell the whole story on an embedded relay in a temp directory",
		usage:   "[--keep]",
		help: `Starts a relay on 127.0.0.1 in a temporary directory and plays the parts
of a coordinator and two care workers with real keys, replicas and sync:
an org, a resident with a secret address, offline edits on two laptops, a
conflict, and a look into the relay's database, which holds no address.`,
		flags: func(fs *flag.FlagSet) {
			fs.Bool("keep", false, "keep the temporary directory and print its path")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			return runDemo(e, flagBool(fs, "keep"))
		},
	})
}

// demo holds the parties of the story.
type demo struct {
	e      *env
	dir    string
	relay  string
	pass   []byte
	step   int
	closer func()
}

func (dm *demo) say(format string, args ...any) {
	fmt.Fprintf(dm.e.stdout, format+"\n", args...)
}

func (dm *demo) title(s string) {
	dm.step++
	fmt.Fprintf(dm.e.stdout, "\n%d. %s\n", dm.step, s)
}

func (dm *demo) opts(who string) client.Options {
	return client.Options{
		Home:       filepath.Join(dm.dir, who),
		Passphrase: func(bool) ([]byte, error) { return append([]byte(nil), dm.pass...), nil },
		Notice:     func(s string) { fmt.Fprintf(dm.e.stderr, "  [%s] %s\n", who, s) },
	}
}

func (dm *demo) open(who string) (*client.Device, error) { return client.Open(dm.opts(who)) }

// as opens a party's laptop, runs fn and locks it again.
func (dm *demo) as(who string, fn func(d *client.Device) error) error {
	d, err := dm.open(who)
	if err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	err = fn(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	return nil
}

func runDemo(e *env, keep bool) error {
	dir, err := os.MkdirTemp("", "fristed-demo-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintf(e.stderr, "demo files kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	dm := &demo{e: e, dir: dir, pass: []byte("demo passphrase: correct horse battery staple")}
	stop, invite, err := dm.startRelay()
	if err != nil {
		return err
	}
	defer stop()
	return dm.story(invite)
}

// startRelay runs a relay on a loopback port with SQLite in dir/relay.
func (dm *demo) startRelay() (func(), string, error) {
	rdir := filepath.Join(dm.dir, "relay")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, "", err
	}
	st, err := sqlite.Open(filepath.Join(rdir, "relay.db"))
	if err != nil {
		return nil, "", err
	}
	ctx := context.Background()
	rl, err := server.New(ctx, server.Config{Dir: rdir, Store: st})
	if err != nil {
		st.Close()
		return nil, "", err
	}
	invite := "fri_demo_" + base64.RawURLEncoding.EncodeToString(randomBytes(24))
	if err := st.PutInvite(ctx, server.InviteHash(invite), time.Now().Add(time.Hour)); err != nil {
		rl.Close()
		st.Close()
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		rl.Close()
		st.Close()
		return nil, "", err
	}
	srv := server.NewHTTPServer(rl.Handler(), nil)
	go srv.Serve(ln)
	dm.relay = "http://" + ln.Addr().String()
	return func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(c)
		rl.Close()
		st.Close()
	}, invite, nil
}

const (
	demoAddress     = "Fjellveien 17B, 2. etasje"
	demoNewAddress  = "Bakkegata 3A, 1. etasje"
	demoLegal       = "Amina Rahimi"
	demoDescription = "About 165 cm, slim, long dark hair, scar above the left eyebrow"
)

// demoCanaries are the case's words that must never be in the relay's files.
var demoCanaries = []string{demoAddress, demoNewAddress, demoLegal, demoDescription, "Mina", "Kari Nordmann"}

func (dm *demo) story(invite string) error {
	ctx := dm.e.ctx
	dm.say("Fristed demo: a relay on %s and three laptops, each in its own directory.", dm.relay)

	dm.title("The coordinator creates the organisation")
	coord, err := client.OrgInit(ctx, dm.opts("coordinator"), client.OrgInitParams{RelayURL: dm.relay, Invite: invite,
		Name: "Enhet A", RecoveryOut: filepath.Join(dm.dir, "recovery.age"), RecoveryPass: []byte("recovery passphrase for the safe")})
	if err != nil {
		return fmt.Errorf("org init: %w", err)
	}
	org := coord.Org()
	dm.say("   org fingerprint %s", org)
	dm.say("   check code for the police: %s (the root key is only in recovery.age)", org.CheckCode())
	for _, w := range []string{"Kari Nordmann", "Ola Hansen"} {
		if _, err := coord.WorkerAdd(ctx, w); err != nil {
			return err
		}
		dm.say("   worker added: %s", w)
	}
	if err := coord.Close(); err != nil {
		return err
	}

	dm.title("Two care workers enrol their laptops")
	for _, p := range []struct{ who, worker string }{{"kari", "Kari Nordmann"}, {"ola", "Ola Hansen"}} {
		d, code, err := client.DeviceInit(ctx, dm.opts(p.who), client.DeviceInitParams{RelayURL: dm.relay, Org: org, Name: p.who + "'s laptop"})
		if err != nil {
			return fmt.Errorf("device init: %w", err)
		}
		d.Close()
		dm.say("   %s's laptop shows enrolment code %s", p.who, code)
		if err := dm.as("coordinator", func(c *client.Device) error {
			_, err := c.Approve(ctx, client.ApproveParams{Code: code, Worker: p.worker})
			return err
		}); err != nil {
			return err
		}
		dm.say("   the coordinator types it in: keys match the code, laptop enrolled for %s", p.worker)
	}

	dm.title("A resident arrives; only Kari is assigned")
	var rid syncproto.StreamID
	if err := dm.as("coordinator", func(c *client.Device) error {
		if rid, err = c.ResidentAdd(ctx, client.ResidentAddParams{Pseudonym: "Mina", Arrived: time.Now().Format("2006-01-02"), Unit: "A", Description: demoDescription}); err != nil {
			return err
		}
		if err := c.ResidentSet(rid.String(), map[string]string{"secret_address": demoAddress, "legal_name": demoLegal, "address_code": "6"}); err != nil {
			return err
		}
		if _, err := c.RecordAdd(rid.String(), "threat", map[string]string{"source": "sending_police_district",
			"date": time.Now().Format("2006-01-02"), "actors": "Father and two uncles", "relation": "family",
			"vehicles": "Grey Volvo V70", "level": "high"}); err != nil {
			return err
		}
		if _, err := c.RecordAdd(rid.String(), "contact", map[string]string{"role": "police", "name": "Family violence coordinator, Oslo police district", "phone": "+47 02800"}); err != nil {
			return err
		}
		if _, err := c.Sync(ctx); err != nil {
			return err
		}
		return c.Assign(ctx, rid.String(), "Kari Nordmann")
	}); err != nil {
		return err
	}
	dm.say("   resident Mina (%s), secret address, legal name and description sealed in the case, with a threat assessment and a police contact", rid)
	for _, who := range []string{"kari", "ola"} {
		if err := dm.as(who, func(d *client.Device) error { _, err := d.Sync(ctx); return err }); err != nil {
			return err
		}
	}

	dm.title("Offline: Kari and the coordinator both edit Mina's case without network")
	if err := dm.as("kari", func(d *client.Device) error {
		if _, err := d.LogAdd("Mina", "support_conversation", 45, "Weekly conversation; talked about school start."); err != nil {
			return err
		}
		if _, err := d.RecordAdd("Mina", "goal", map[string]string{"title": "Norwegian course B1", "due": time.Now().AddDate(0, 3, 0).Format("2006-01-02")}); err != nil {
			return err
		}
		return d.ResidentSet("Mina", map[string]string{"language": "Dari, some Norwegian"})
	}); err != nil {
		return err
	}
	dm.say("   Kari: a log entry, an action-plan goal, and language = \"Dari, some Norwegian\"")
	if err := dm.as("coordinator", func(d *client.Device) error {
		if _, err := d.LogAdd("Mina", "safety", 30, "Safety conversation with the police contact."); err != nil {
			return err
		}
		return d.ResidentSet("Mina", map[string]string{"language": "Dari"})
	}); err != nil {
		return err
	}
	dm.say("   coordinator: a log entry, and language = \"Dari\" (the same field, concurrently)")

	dm.title("Back online: both sync")
	for _, who := range []string{"kari", "coordinator", "kari"} {
		if err := dm.as(who, func(d *client.Device) error {
			res, err := d.Sync(ctx)
			if err == nil {
				dm.say("   %s synced: %d sent, %d received", who, res.Pushed, res.Pulled)
			}
			return err
		}); err != nil {
			return err
		}
	}

	dm.title("What each party sees")
	for _, who := range []string{"kari", "coordinator"} {
		if err := dm.as(who, func(d *client.Device) error {
			v, err := d.ResidentShow("Mina", false)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := d.RenderResident(&buf, v); err != nil {
				return err
			}
			dm.say("   --- %s's laptop ---", who)
			for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
				dm.say("   | %s", line)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// Showing the case was an access event on each laptop; Kari's goes to
	// the coordinators with her next sync.
	if err := dm.as("kari", func(d *client.Device) error { _, err := d.Sync(ctx); return err }); err != nil {
		return err
	}
	dm.say("   (each opening is recorded in the audit log; Kari's laptop synced it)")
	if err := dm.as("ola", func(d *client.Device) error {
		rs, err := d.ResidentList()
		if err != nil {
			return err
		}
		dm.say("   --- ola's laptop --- residents: %d (Ola is not assigned to Mina)", len(rs))
		return nil
	}); err != nil {
		return err
	}

	dm.title("What the relay holds")
	found, scanned, err := scanDir(filepath.Join(dm.dir, "relay"), demoCanaries)
	if err != nil {
		return err
	}
	dm.say("   scanned %d bytes of the relay's files (database, WAL, keys) for the address, the legal name,", scanned)
	dm.say("   the pseudonym and a worker's name, raw and in hex and base64: %s", map[bool]string{true: "FOUND (this is a bug)", false: "none found"}[found != ""])
	if found != "" {
		return fmt.Errorf("the relay's files hold %q", found)
	}
	dm.title("The police contact gets a sealed alarm envelope")
	policeKey := filepath.Join(dm.dir, "police.key")
	recipient, err := client.PoliceKeygen(policeKey)
	if err != nil {
		return err
	}
	dm.say("   the police make a key pair; only the public key (%s...) goes to the coordinator", recipient[:16])
	var seal *client.SealResult
	if err := dm.as("coordinator", func(c *client.Device) error {
		if _, fp, err := c.PoliceAdd(ctx, "Politiet familievold", recipient); err != nil {
			return err
		} else {
			dm.say("   police contact added; key fingerprint %s confirmed by phone", fp)
		}
		seal, err = c.EnvelopeSeal(ctx, "Mina", "Politiet familievold", dm.dir)
		return err
	}); err != nil {
		return err
	}
	dm.say("   envelope sealed: alarm id %s, check code %s on the police's paper card", seal.Alarm, seal.CheckCode)
	dm.say("   the relay holds it under a one-time release key; nobody, the police included, can read it yet")

	dm.title("Mina moves to another flat: the envelope follows at the next sync")
	if err := dm.as("coordinator", func(c *client.Device) error {
		if err := c.ResidentSet("Mina", map[string]string{"secret_address": demoNewAddress}); err != nil {
			return err
		}
		_, err := c.Sync(ctx)
		return err
	}); err != nil {
		return err
	}
	dm.say("   the coordinator's sync saw that the card would say something new and re-sealed it:")
	dm.say("   the relay destroyed the old release key first, so the old envelope can never be opened;")
	dm.say("   the alarm id and the police's credential stay the same")

	dm.title("The violence alarm goes off: the police release the envelope")
	cred, err := client.ReadCredential(seal.CredentialPath)
	if err != nil {
		return err
	}
	rel, err := client.EnvelopeRelease(ctx, cred)
	if err != nil {
		return err
	}
	card, err := openWithStockAge(policeKey, rel.Inner)
	if err != nil {
		return err
	}
	if !strings.Contains(card, demoNewAddress) || strings.Contains(card, demoAddress) {
		return errors.New("the released card does not hold the new address alone")
	}
	dm.say("   released once, checked against the org fingerprint (sealed %s, check code %s, generation %d);",
		rel.SealedAt.Format("2006-01-02 15:04:05"), rel.CheckCode, rel.Generation)
	dm.say("   release code %s: the coordinator sees the same code beside the release", rel.ReleaseCode)
	dm.say("   opened with the stock age tool and the police key, the card reads:")
	for _, line := range strings.Split(card, "\n") {
		if strings.HasPrefix(line, "-- signature") {
			break
		}
		dm.say("   | %s", line)
	}
	if _, err := client.EnvelopeRelease(ctx, cred); err == nil {
		return errors.New("a second release was not refused")
	} else {
		dm.say("   a second release request: %v", err)
	}

	dm.title("Kari's laptop is lost: the coordinator revokes it")
	var kariDev string
	if err := dm.as("kari", func(d *client.Device) error { kariDev = d.ID().String(); return nil }); err != nil {
		return err
	}
	if err := dm.as("coordinator", func(c *client.Device) error {
		res, err := c.Revoke(ctx, client.RevokeParams{Device: kariDev})
		if err != nil {
			return err
		}
		dm.say("   revoked %s; %d stream(s) moved to a new key the laptop never gets", res.Device, res.Rekeyed)
		if _, err := c.LogAdd("Mina", "safety", 15, "Moved the alarm check-in to Thursdays."); err != nil {
			return err
		}
		_, err = c.Sync(ctx)
		return err
	}); err != nil {
		return err
	}
	dm.say("   the coordinator goes on writing, under the new key")
	err = dm.as("kari", func(d *client.Device) error { _, err := d.Sync(ctx); return err })
	switch {
	case errors.Is(err, client.ErrWiped):
		dm.say("   the lost laptop reaches the relay: refused, shown the signed revocation, verified it, wiped itself")
	case err == nil:
		return errors.New("the revoked laptop was not refused")
	default:
		return err
	}
	if client.Exists(filepath.Join(dm.dir, "kari")) {
		return errors.New("the revoked laptop still holds its identity")
	}
	dm.say("   its directory now holds no identity and no replica")

	dm.title("The coordinator checks the audit log")
	if err := dm.as("coordinator", func(c *client.Device) error {
		if _, err := c.Sync(ctx); err != nil {
			return err
		}
		rep, err := c.AuditVerify(ctx)
		if err != nil {
			return err
		}
		if rep.Problem != nil {
			return rep.Problem
		}
		dm.say("   %s", rep.Summary())
		entries, err := c.AuditShow("Mina", time.Time{})
		if err != nil {
			return err
		}
		dm.say("   who opened, revealed or exported Mina's case (recorded on the laptops, sealed to coordinators):")
		for _, e := range entries {
			if e.Source == "device" {
				dm.say("   | %s  %s %s", e.At.Format("15:04"), e.Who, e.What)
			}
		}
		return nil
	}); err != nil {
		return err
	}

	found, scanned, err = scanDir(filepath.Join(dm.dir, "relay"), demoCanaries)
	if err != nil {
		return err
	}
	dm.say("\n   the relay's files again, after the release and the revocation (%d bytes): %s", scanned,
		map[bool]string{true: "FOUND (this is a bug)", false: "none found"}[found != ""])
	if found != "" {
		return fmt.Errorf("the relay's files hold %q", found)
	}
	if resp, err := http.Get(dm.relay + "/healthz"); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	dm.say("\nDone. Everything above ran with real keys, real SQLite files and real HTTP on loopback.")
	return nil
}

// scanDir looks for any needle, raw, hex or base64 (three alignments), in
// every file under dir.
func scanDir(dir string, needles []string) (string, int64, error) {
	var forms [][]byte
	var names []string
	for _, n := range needles {
		for _, f := range encodings([]byte(n)) {
			forms = append(forms, f)
			names = append(names, n)
		}
	}
	var total int64
	found := ""
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		total += int64(len(b))
		for i, f := range forms {
			if bytes.Contains(b, f) {
				found = names[i]
				return nil
			}
		}
		return nil
	})
	return found, total, err
}

func encodings(b []byte) [][]byte {
	out := [][]byte{b, []byte(fmt.Sprintf("%x", b)), []byte(fmt.Sprintf("%X", b))}
	for shift := 0; shift < 3; shift++ {
		pre := append(make([]byte, shift), b...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString(pre)
			// Drop the characters that depend on the prefix and the tail.
			start := (shift*4 + 2) / 3
			end := len(s) - 4
			if end-start >= 8 {
				out = append(out, []byte(s[start:end]))
			}
		}
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// openWithStockAge decrypts with the age library alone, as the police's
// `age -d -i police.key` would.
func openWithStockAge(identityFile string, file []byte) (string, error) {
	f, err := os.Open(identityFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return "", err
	}
	r, err := age.Decrypt(bytes.NewReader(file), ids...)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
	return strings.TrimRight(string(b), "\n"), err
}
