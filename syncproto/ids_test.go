package syncproto

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// idKind is one identifier type, seen through its string form.
type idKind struct {
	prefix string
	format func(rawID) string
	parse  func(string) (rawID, error)
	fresh  func() string
}

func idParser[T ~[16]byte](parse func(string) (T, error)) func(string) (rawID, error) {
	return func(s string) (rawID, error) {
		v, err := parse(s)
		return rawID(v), err
	}
}

var idKinds = []idKind{
	{"t_", func(r rawID) string { return TenantID(r).String() }, idParser(ParseTenantID), func() string { return NewTenantID().String() }},
	{"d_", func(r rawID) string { return DeviceID(r).String() }, idParser(ParseDeviceID), func() string { return NewDeviceID().String() }},
	{"w_", func(r rawID) string { return WorkerID(r).String() }, idParser(ParseWorkerID), func() string { return NewWorkerID().String() }},
	{"s_", func(r rawID) string { return StreamID(r).String() }, idParser(ParseStreamID), func() string { return NewStreamID().String() }},
	{"a_", func(r rawID) string { return AlarmID(r).String() }, idParser(ParseAlarmID), func() string { return NewAlarmID().String() }},
	{"x_", func(r rawID) string { return DeltaID(r).String() }, idParser(ParseDeltaID), func() string { return NewDeltaID().String() }},
	{"r_", func(r rawID) string { return RequestID(r).String() }, idParser(ParseRequestID), func() string { return NewRequestID().String() }},
	{"p_", func(r rawID) string { return ContactID(r).String() }, idParser(ParseContactID), func() string { return NewContactID().String() }},
}

func TestIDs(t *testing.T) {
	raw := testRaw("id")
	for _, k := range idKinds {
		s := k.format(raw)
		require.True(t, strings.HasPrefix(s, k.prefix), "%s has prefix %s", s, k.prefix)
		require.Len(t, s, len(k.prefix)+26)
		got, err := k.parse(s)
		require.NoError(t, err)
		require.Equal(t, raw, got)
		a, b := k.fresh(), k.fresh()
		require.NotEqual(t, a, b, "fresh ids differ")
		_, err = k.parse(a)
		require.NoError(t, err)

		bad := []string{
			"",
			k.prefix,
			strings.TrimPrefix(s, k.prefix),        // no prefix
			"q_" + strings.TrimPrefix(s, k.prefix), // another prefix
			strings.ToUpper(s),                     // case
			s[:len(s)-1],                           // short
			s + "a",                                // long
			s[:len(s)-1] + "b",                     // unused low bits set: not canonical
			s[:10] + "\n" + s[10:],                 // a newline base32 would skip
			s[:10] + "1" + s[11:],                  // not in the alphabet
			k.prefix + strings.Repeat("a", 26) + "===", // padding
		}
		for _, in := range bad {
			if _, err := k.parse(in); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: parse %q: got %v, want %v", k.prefix, in, err, ErrMalformed)
			}
		}
		// Each type refuses the others' prefixes.
		for _, o := range idKinds {
			if o.prefix == k.prefix {
				continue
			}
			if _, err := k.parse(o.format(raw)); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s given %s: got %v, want %v", k.prefix, o.format(raw), err, ErrMalformed)
			}
		}
	}
	for _, tt := range []struct {
		zero bool
		want bool
	}{
		{TenantID{}.IsZero(), true}, {DeviceID{}.IsZero(), true}, {StreamID{}.IsZero(), true}, {WorkerID{}.IsZero(), true},
		{TenantID(raw).IsZero(), false}, {DeviceID(raw).IsZero(), false}, {StreamID(raw).IsZero(), false}, {WorkerID(raw).IsZero(), false},
	} {
		if tt.zero != tt.want {
			t.Errorf("IsZero: got %v, want %v", tt.zero, tt.want)
		}
	}
	for _, v := range []slog.LogValuer{TenantID(raw), DeviceID(raw), StreamID(raw)} {
		if got := v.LogValue().String(); !strings.HasSuffix(got, strings.TrimPrefix(TenantID(raw).String(), "t_")) {
			t.Errorf("LogValue: got %q, want the id's string form", got)
		}
	}
}

func TestHashString(t *testing.T) {
	h := testHash("x")
	s := h.String()
	require.Len(t, s, 2+52)
	got, err := ParseHash(s)
	require.NoError(t, err)
	require.Equal(t, h, got)
	require.False(t, h.IsZero())
	require.True(t, Hash{}.IsZero())
	// The last character carries one bit; the next letter sets an unused one.
	notCanonical := s[:len(s)-1] + string(s[len(s)-1]+1)
	for _, in := range []string{"", "h_", s[2:], "x_" + s[2:], s[:len(s)-1], s + "a", strings.ToUpper(s), s[:10] + "\r" + s[10:],
		notCanonical, TenantID(testRaw("t")).String()} {
		if _, err := ParseHash(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("parse %q: got %v, want %v", in, err, ErrMalformed)
		}
	}
}
