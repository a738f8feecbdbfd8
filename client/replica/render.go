package replica

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Render writes the case as text for a terminal: the resident's fields,
// each kind of record, the log and any conflicts. Values are shown as they
// are in the view (masked unless revealed); control characters in them
// (which a faulty device could have written) are shown as U+FFFD so they
// cannot drive the terminal.
func (v *ResidentView) Render(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "resident %s\n", v.ID)
	res := kindIndex[KindResident]
	writeFieldLines(bw, res, v.Fields, func(name string) string {
		if name == "planned_move_out" && v.PlannedMoveOutDefault {
			return " (arrived + 6 months)"
		}
		return ""
	})
	for _, k := range schema {
		recs := v.Records[k.Name]
		if len(recs) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s (%d)\n", k.Name, len(recs))
		for _, rec := range recs {
			fmt.Fprintf(bw, "  %s\n", rec.ID)
			writeFieldLines(bw, kindIndex[k.Name], rec.Fields, nil)
		}
	}
	total := 0
	for _, e := range v.Log {
		total += e.Minutes
	}
	fmt.Fprintf(bw, "\nlog (%d entries, %d minutes)\n", len(v.Log), total)
	for _, e := range v.Log {
		fmt.Fprintf(bw, "  %s  %s  %d min  %s  %s\n", formatTime(e.At), clean(e.Category), e.Minutes, clean(e.Author), e.ID)
		for _, line := range strings.Split(clean(e.Text), "\n") {
			fmt.Fprintf(bw, "      %s\n", line)
		}
	}
	if len(v.Conflicts) > 0 {
		fmt.Fprintf(bw, "\nconflicts (concurrent edits; setting the field again resolves them)\n")
		for _, c := range v.Conflicts {
			where := c.Field
			if c.Kind != KindResident && c.Kind != "" {
				where = fmt.Sprintf("%s %s %s", c.Kind, c.Record, c.Field)
			}
			vals := make([]string, len(c.Values))
			for i, s := range c.Values {
				vals[i] = fmt.Sprintf("%q", s)
			}
			fmt.Fprintf(bw, "  %s: %s\n", where, strings.Join(vals, " | "))
		}
	}
	return bw.Flush()
}

func writeFieldLines(w io.Writer, k *Kind, fields map[string]string, note func(string) string) {
	width := 0
	for _, f := range k.Fields {
		if _, ok := fields[f.Name]; ok {
			width = max(width, len(f.Name))
		}
	}
	for _, f := range k.Fields {
		v, ok := fields[f.Name]
		if !ok {
			continue
		}
		suffix := ""
		if note != nil {
			suffix = note(f.Name)
		}
		lines := strings.Split(clean(v), "\n")
		fmt.Fprintf(w, "    %-*s  %s%s\n", width, f.Name, lines[0], suffix)
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "    %-*s  %s\n", width, "", l)
		}
	}
}

// clean replaces control characters (except newline and tab) and the
// bidirectional embeddings, overrides and isolates, which can make a line
// read differently from what it holds, with U+FFFD. The plain direction
// marks (LRM, RLM, ALM) stay: Arabic-script text uses them.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r), r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return unicode.ReplacementChar
		}
		return r
	}, s)
}
