package auth

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// decodeObject decodes a JSON object into the same map encoding/json would
// make (strings, float64, bool, nil, []any, map[string]any).
//
// Why not json.Unmarshal alone: decoding the claims is most of what Verify
// does besides the signature check, and encoding/json (a validating pass,
// then reflection) takes about 10 µs for a Supabase access token here, more
// than a quarter of an RS256 check. This decoder handles the plain JSON
// that issuers write in one pass without reflection, and its strings point
// into data instead of being copied, so data must never change afterwards.
// Anything unusual (escapes other than the short ones, invalid UTF-8, a
// number out of range, a syntax error) is left to encoding/json, so the
// result is always exactly what encoding/json gives; FuzzDecodeObject checks
// that against encoding/json itself.
func decodeObject(data []byte) (map[string]any, error) {
	d := fastDecoder{data: data}
	d.skipSpace()
	if d.peek() == '{' {
		if v, ok := d.object(); ok {
			if d.skipSpace(); d.pos == len(d.data) {
				return v, nil
			}
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil { // the JSON was null
		return nil, errNotObject
	}
	return m, nil
}

var errNotObject = errors.New("JSON value is not an object")

// maxDepth bounds nesting in the fast path; deeper input takes the slow one.
const maxDepth = 64

type fastDecoder struct {
	data  []byte
	pos   int
	depth int
}

func (d *fastDecoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *fastDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// value decodes any JSON value; ok is false when the fast path gives up.
func (d *fastDecoder) value() (any, bool) {
	d.skipSpace()
	switch c := d.peek(); {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, false
}

func (d *fastDecoder) literal(word string) bool {
	if len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word {
		d.pos += len(word)
		return true
	}
	return false
}

func (d *fastDecoder) object() (map[string]any, bool) {
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.pos++ // '{'
	size := 0
	if d.depth == 1 {
		size = 16 // a claim set: about as many claims as Supabase sends
	}
	m := make(map[string]any, size)
	d.skipSpace()
	if d.peek() == '}' {
		d.pos++
		return m, true
	}
	for {
		d.skipSpace()
		if d.peek() != '"' {
			return nil, false
		}
		key, ok := d.string()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.peek() != ':' {
			return nil, false
		}
		d.pos++
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[key] = v
		d.skipSpace()
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *fastDecoder) array() ([]any, bool) {
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	d.pos++ // '['
	a := []any{}
	d.skipSpace()
	if d.peek() == ']' {
		d.pos++
		return a, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.skipSpace()
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return a, true
		default:
			return nil, false
		}
	}
}

// string decodes a string without escapes, or with the two-character ones
// only; \u escapes and invalid UTF-8 take the slow path.
func (d *fastDecoder) string() (string, bool) {
	d.pos++ // '"'
	start := d.pos
	ascii, escaped := true, false
	for ; d.pos < len(d.data); d.pos++ {
		c := d.data[d.pos]
		switch {
		case c == '"':
			raw := d.data[start:d.pos]
			d.pos++
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			if escaped {
				return unescape(raw)
			}
			if len(raw) == 0 {
				return "", true
			}
			return unsafe.String(&raw[0], len(raw)), true
		case c == '\\':
			escaped = true
			if d.pos++; d.pos == len(d.data) {
				return "", false
			}
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// unescape resolves the two-character escapes of raw.
func unescape(raw []byte) (string, bool) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default: // \u, or not an escape at all
			return "", false
		}
	}
	return string(out), true
}

// number decodes a number of RFC 8259's grammar as a float64.
func (d *fastDecoder) number() (any, bool) {
	start := d.pos
	if d.peek() == '-' {
		d.pos++
	}
	switch c := d.peek(); {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return nil, false
	}
	if d.peek() == '.' {
		d.pos++
		if !d.digits() {
			return nil, false
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.pos++
		if c := d.peek(); c == '+' || c == '-' {
			d.pos++
		}
		if !d.digits() {
			return nil, false
		}
	}
	raw := d.data[start:d.pos]
	f, err := strconv.ParseFloat(unsafe.String(&raw[0], len(raw)), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

func (d *fastDecoder) digits() bool {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}
