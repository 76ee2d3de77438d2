package auth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonSamples are objects the fast path takes, objects it leaves to
// encoding/json, and things that are no object at all.
var jsonSamples = []string{
	`{}`,
	` { "a" : 1 , "b":[ ] ,"c":{ }} `,
	`{"iss":"https://x.supabase.co/auth/v1","aud":"authenticated","exp":1767225600,"iat":1767222000.5,"sub":"5f1c"}`,
	`{"aud":["a","b"],"amr":[{"method":"password","timestamp":1767222000}],"is_anonymous":false,"phone":"","n":null,"t":true}`,
	`{"name":"Zoë 👋 日本","esc":"a\"b\\c\/d\b\f\n\r\t"}`,
	`{"u":"\u00e9\ud83d\ude00","bad":"\ud800"}`,
	`{"num":-0,"e":1E+2,"f":-1.5e-3,"big":123456789012345678901234567890,"small":1e-400}`,
	`{"dup":1,"dup":{"x":2},"dup":[3]}`,
	"{\"bad utf8\":\"\xff\xfe\"}",
	"{\"ctl\":\"a\x01b\"}",
	`{"deep":` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}`,
	`{"huge":1e999}`,
	`{"lead":01}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, `{"a":tru}`, `{"a":"x`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
	`{'a':1}`, `{a:1}`, `{"a":[1,]}`, `{"a":[1 2]}`, `{"a":"\x"}`, `{"a":"\u12"}`,
	`[]`, `null`, `"s"`, `1`, ``, ` `, `{`, `}`, `{"a":1}{}`,
}

func TestDecodeObjectMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		compareWithEncodingJSON(t, []byte(s))
	}
}

func TestDecodeObjectFastPath(t *testing.T) {
	// The claims of real tokens need no fallback.
	f := newFixture(t)
	for _, c := range []map[string]any{f.supabaseClaims("u"), f.firebaseClaims("u")} {
		b, _ := json.Marshal(c)
		d := fastDecoder{data: b}
		if _, ok := d.object(); !ok || d.pos != len(b) {
			t.Errorf("fast path gave up on %s", b)
		}
	}
}

func compareWithEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	orig := string(data)
	got, err := decodeObject(data)
	var want map[string]any
	wantErr := json.Unmarshal([]byte(orig), &want)
	if wantErr == nil && want == nil {
		wantErr = errNotObject
	}
	if string(data) != orig {
		t.Fatalf("decodeObject changed its input %q", orig)
	}
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, encoding/json says %v", orig, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", orig, got, want)
	}
}

// FuzzDecodeObject checks that decodeObject always agrees with encoding/json.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(compareWithEncodingJSON)
}
