package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "assign",
		summary: "give a worker access to a resident (coordinator)",
		usage:   "RESIDENT --worker NAME",
		help:    `Starts a new key epoch for the case, wrapped to the worker's laptops.`,
		flags:   func(fs *flag.FlagSet) { fs.String("worker", "", "the worker's name") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "worker") == "" {
				return usagef("want RESIDENT --worker NAME")
			}
			return e.withDevice(func(d *client.Device) error { return d.Assign(e.ctx, args[0], flagStr(fs, "worker")) })
		},
	})
	register(&command{
		name:    "unassign",
		summary: "remove a worker's access to a resident (coordinator)",
		usage:   "RESIDENT --worker NAME",
		help:    `Starts a new key epoch without the worker's laptops: nothing written from now on is readable by them.`,
		flags:   func(fs *flag.FlagSet) { fs.String("worker", "", "the worker's name") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "worker") == "" {
				return usagef("want RESIDENT --worker NAME")
			}
			return e.withDevice(func(d *client.Device) error { return d.Unassign(e.ctx, args[0], flagStr(fs, "worker")) })
		},
	})
	register(&command{
		name:    "sync",
		summary: "push edits made on this laptop and pull the others'",
		usage:   "[--watch [--wait SECONDS]]",
		help: `Works any time: edits made offline wait on this laptop until a sync
reaches the relay. If the relay cannot be reached, says how many edits are
pending and exits non-zero; nothing is lost.

With --watch it keeps the laptop in sync until interrupted (Ctrl-C): after
each sync it waits at the relay for news (long-poll) and syncs as soon as
another laptop writes. While the relay is unreachable it retries after a
pause that doubles up to 5 minutes, with random jitter; it prints a line per
sync that moved anything or failed, and exits 0 when interrupted (non-zero
only if this laptop was revoked and wiped).

A long sync shows a progress bar on a terminal and a line every tenth of
the way otherwise.`,
		flags: func(fs *flag.FlagSet) {
			fs.Bool("watch", false, "keep syncing until interrupted")
			fs.Int("wait", int(client.DefaultWatchWait/time.Second), "with --watch: seconds one wait at the relay lasts (at most 60)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			watch := flagBool(fs, "watch")
			wait, _ := strconv.Atoi(flagStr(fs, "wait"))
			if wait < 1 || wait > 60 {
				return usagef("--wait: want 1 to 60 seconds, got %d", wait)
			}
			waitSet := false
			fs.Visit(func(f *flag.Flag) { waitSet = waitSet || f.Name == "wait" })
			if !watch && waitSet {
				return usagef("--wait needs --watch")
			}
			opts := e.options()
			opts.Progress = e.progress()
			d, err := client.Open(opts)
			if err != nil {
				return err
			}
			if watch {
				err = e.watch(d, time.Duration(wait)*time.Second)
			} else {
				var res client.SyncResult
				res, err = d.Sync(e.ctx)
				if err == nil {
					fmt.Fprintf(e.stdout, "synced: %d sent, %d received, %d pending\n", res.Pushed, res.Pulled, res.Pending)
				}
			}
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			return err
		},
	})
	register(&command{
		name:    "passphrase change",
		summary: "change this laptop's passphrase",
		usage:   "[--new-passphrase-file F]",
		flags: func(fs *flag.FlagSet) {
			fs.String("new-passphrase-file", "", "file holding the new passphrase (else a prompt)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var newPass []byte
			var err error
			if f := flagStr(fs, "new-passphrase-file"); f != "" {
				newPass, err = readSecretFile(f, "--new-passphrase-file")
			} else {
				newPass, err = e.prompt("New device passphrase", true)
			}
			if err != nil {
				return err
			}
			if err := client.ChangePassphrase(e.options(), newPass); err != nil {
				return err
			}
			fmt.Fprintln(e.stderr, "passphrase changed")
			return nil
		},
	})
}

// watch runs the sync loop until interrupted.
func (e *env) watch(d *client.Device, wait time.Duration) error {
	stamp := func() string { return time.Now().Format("15:04:05") }
	fmt.Fprintf(e.stderr, "%s watching for changes; Ctrl-C stops\n", stamp())
	err := d.Watch(e.ctx, client.WatchOptions{
		Wait: wait,
		OnSync: func(res client.SyncResult, err error) {
			switch {
			case err != nil:
				fmt.Fprintf(e.stderr, "%s sync failed: %v\n", stamp(), err)
			case res.Pushed > 0 || res.Pulled > 0:
				fmt.Fprintf(e.stdout, "%s synced: %d sent, %d received, %d pending\n", stamp(), res.Pushed, res.Pulled, res.Pending)
			}
		},
		OnRetry: func(failures int, pause time.Duration) {
			fmt.Fprintf(e.stderr, "%s retrying in %s\n", stamp(), pause.Round(time.Second/10))
		},
	})
	if err == nil {
		fmt.Fprintf(e.stderr, "%s stopped\n", stamp())
	}
	return err
}

// progress shows the progress of a long sync: a bar on a terminal, a
// plain line every tenth of the way otherwise. Short syncs show nothing.
func (e *env) progress() func(done, total int, what string) {
	const long = 50 // batches
	if isTerminalOut(e.stderr) {
		var bar *progressbar.ProgressBar
		return func(done, total int, what string) {
			if total < long {
				return
			}
			if bar == nil {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionSetDescription("sync"),
					progressbar.OptionShowCount(),
					progressbar.OptionSetItsString(what),
					progressbar.OptionShowIts(),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(),
				)
			}
			bar.Set(done)
			if done >= total {
				bar.Finish()
				bar = nil
			}
		}
	}
	step := -1
	return func(done, total int, what string) {
		if total < long {
			return
		}
		if s := done * 10 / total; s != step {
			step = s
			fmt.Fprintf(e.stderr, "sync: %d/%d %s\n", done, total, what)
		}
	}
}
