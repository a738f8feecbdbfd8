package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "worker add",
		summary: "register a care worker (coordinator)",
		usage:   "NAME",
		help:    `The name is kept only in the org's encrypted directory; the relay sees a random id.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one NAME (quote names with spaces)")
			}
			return e.withDevice(func(d *client.Device) error {
				id, err := d.WorkerAdd(e.ctx, args[0])
				if err != nil {
					return err
				}
				e.last(id.String())
				return nil
			})
		},
	})
	register(&command{
		name:    "worker list",
		summary: "list workers",
		usage:   "[--json]",
		flags:   func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			return e.withDevice(func(d *client.Device) error {
				ws, err := d.WorkerList()
				if err != nil {
					return err
				}
				return listOut(e, flagBool(fs, "json"), ws, func(w client.WorkerInfo) string {
					state := ""
					if w.Removed {
						state = " (removed)"
					}
					return fmt.Sprintf("%-24s %d device(s) %d resident(s)%s", w.Name, w.Devices, len(w.Residents), state)
				})
			})
		},
	})
}

func joinArgs(a []string) string { return strings.Join(a, " ") }

// listOut prints a list as JSON (an empty one as []) or one line per item.
func listOut[T any](e *env, asJSON bool, items []T, line func(T) string) error {
	if asJSON {
		if items == nil {
			items = []T{}
		}
		return json.NewEncoder(e.stdout).Encode(items)
	}
	for _, it := range items {
		fmt.Fprintln(e.stdout, line(it))
	}
	return nil
}
