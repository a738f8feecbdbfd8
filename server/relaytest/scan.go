package relaytest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Encodings returns the forms in which canary could appear in stored or
// sent bytes: raw, hex (lower and upper case), and base64 (standard and
// URL alphabets) at each of the three byte alignments, keeping only the
// characters that depend on the canary alone.
func Encodings(canary []byte) map[string][]byte {
	out := map[string][]byte{
		"raw":       canary,
		"hex":       []byte(hex.EncodeToString(canary)),
		"hex-upper": []byte(strings.ToUpper(hex.EncodeToString(canary))),
	}
	for k := 0; k < 3; k++ {
		buf := append(make([]byte, k), canary...)
		start := 0
		if k > 0 {
			start = 4
		}
		end := len(buf) / 3 * 4
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(buf)
			if end > start {
				out[name+"-"+string(rune('0'+k))] = []byte(s[start:end])
			}
		}
	}
	return out
}

// Find returns a description of every canary encoding found in data.
func Find(data []byte, canaries [][]byte) []string {
	var hits []string
	for _, c := range canaries {
		for name, enc := range Encodings(c) {
			if bytes.Contains(data, enc) {
				hits = append(hits, name+" of "+string(c))
			}
		}
	}
	return hits
}

// FindInDir scans every file under dir; it returns hits prefixed by the
// file's path relative to dir.
func FindInDir(dir string, canaries [][]byte) ([]string, error) {
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		for _, h := range Find(b, canaries) {
			hits = append(hits, rel+": "+h)
		}
		return nil
	})
	return hits, err
}
