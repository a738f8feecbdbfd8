package relaytest

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// TestFind checks that a canary embedded at any offset in any of the
// encodings is found, so that a scan finding nothing means something.
func TestFind(t *testing.T) {
	canary := []byte("canary-secret-address-Storgata-17B")
	for off := 0; off < 3; off++ {
		data := append([]byte(strings.Repeat("z", off)), canary...)
		data = append(data, "tail"...)
		forms := map[string]string{
			"raw":       string(data),
			"hex":       hex.EncodeToString(data),
			"hex-upper": strings.ToUpper(hex.EncodeToString(data)),
			"base64":    base64.StdEncoding.EncodeToString(data),
			"base64url": base64.RawURLEncoding.EncodeToString(data),
		}
		for name, f := range forms {
			if hits := Find([]byte("prefix "+f+" suffix"), [][]byte{canary}); len(hits) == 0 {
				t.Errorf("%s at offset %d: not found", name, off)
			}
		}
	}
	if hits := Find([]byte("nothing to see"), [][]byte{canary}); len(hits) != 0 {
		t.Errorf("found %v in unrelated bytes", hits)
	}
}
