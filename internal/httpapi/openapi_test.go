package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// TestMain (goleak) is in bench_test.go.

// quietLogger keeps expected warnings (a failing readiness check) out of
// the test output.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// loadDoc parses the embedded API description.
func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// docPath turns a ServeMux pattern into an OpenAPI path template:
// {name...} becomes {name} and a trailing {$} (exact match) is dropped.
func docPath(pattern string) string {
	p := strings.TrimSuffix(pattern, "{$}")
	return strings.ReplaceAll(p, "...}", "}")
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// routeMismatches compares the route table with the document's paths: it
// returns the non-public routes the document lacks and the operations the
// table lacks.
func routeMismatches(doc map[string]any, routes []Route) (missing, extra []string) {
	paths, _ := doc["paths"].(map[string]any)
	inTable := map[string]bool{}
	for _, rt := range routes {
		if rt.Public {
			continue
		}
		key := strings.ToLower(rt.Method) + " " + docPath(rt.Pattern)
		inTable[key] = true
		item, _ := paths[docPath(rt.Pattern)].(map[string]any)
		if _, ok := item[strings.ToLower(rt.Method)]; !ok {
			missing = append(missing, rt.Method+" "+rt.Pattern)
		}
	}
	for p, v := range paths {
		item, _ := v.(map[string]any)
		for _, m := range httpMethods {
			if _, ok := item[m]; ok && !inTable[m+" "+p] {
				extra = append(extra, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}

func TestOpenAPIMatchesRouteTable(t *testing.T) {
	doc := loadDoc(t)
	routes := New(nil, nil, Options{}).Routes()
	missing, extra := routeMismatches(doc, routes)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json describes operations the route table lacks: %v", extra)
	}
	// Public routes (console, /docs, the emulator) stay out of the description.
	paths := doc["paths"].(map[string]any)
	for _, rt := range New(nil, nil, Options{AuthEmulator: http.NotFoundHandler()}).Routes() {
		if _, ok := paths[docPath(rt.Pattern)]; rt.Public && ok {
			t.Errorf("public route %s %s is in openapi.json", rt.Method, rt.Pattern)
		}
	}
}

// TestRouteMismatchesDetects proves the check above can fail: a route added
// to the table without a description, and a description without a route,
// are both reported.
func TestRouteMismatchesDetects(t *testing.T) {
	doc := loadDoc(t)
	routes := New(nil, nil, Options{}).Routes()
	withNew := append(slices.Clone(routes), Route{Method: "DELETE", Pattern: "/api/v1/messages/{id}"}, Route{Method: "GET", Pattern: "/api/v1/files/{path...}"})
	missing, _ := routeMismatches(doc, withNew)
	if want := []string{"DELETE /api/v1/messages/{id}", "GET /api/v1/files/{path...}"}; !slices.Equal(missing, want) {
		t.Errorf("missing = %v, want %v", missing, want)
	}
	var without []Route
	for _, rt := range routes {
		if rt.Pattern != "/api/v1/messages/{id}/cancel" {
			without = append(without, rt)
		}
	}
	if _, extra := routeMismatches(doc, without); !slices.Equal(extra, []string{"POST /api/v1/messages/{id}/cancel"}) {
		t.Errorf("extra = %v, want the cancel operation", extra)
	}
}

func TestDocPath(t *testing.T) {
	for pattern, want := range map[string]string{
		"/api/v1/messages/{id}/events": "/api/v1/messages/{id}/events",
		"/api/v1/files/{path...}":      "/api/v1/files/{path}",
		"/api/v1/{$}":                  "/api/v1/",
	} {
		if got := docPath(pattern); got != want {
			t.Errorf("docPath(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// resolve follows a local JSON pointer (RFC 6901) in doc.
func resolve(doc any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	cur := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q: %q is not inside an object", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("%q: no member %q", ref, tok)
		}
	}
	return cur, nil
}

// walk calls fn with every object in v, with its JSON pointer.
func walk(v any, at string, fn func(at string, obj map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(at, v)
		for k, c := range v {
			walk(c, at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), fn)
		}
	case []any:
		for i, c := range v {
			walk(c, at+"/"+strconv.Itoa(i), fn)
		}
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadDoc(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs title and version: %v", info)
	}
	servers, _ := doc["servers"].([]any)
	if len(servers) != 1 || servers[0].(map[string]any)["url"] != "/" {
		t.Errorf("servers = %v, want the relative /", servers)
	}
	schemes, _ := doc["components"].(map[string]any)["securitySchemes"].(map[string]any)
	if b, _ := schemes["bearerAuth"].(map[string]any); b["type"] != "http" || b["scheme"] != "bearer" || b["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth = %v", b)
	}

	refs := 0
	walk(doc, "#", func(at string, obj map[string]any) {
		ref, ok := obj["$ref"].(string)
		if !ok {
			return
		}
		refs++
		if _, err := resolve(doc, ref); err != nil {
			t.Errorf("%s: %v", at, err)
		}
	})
	if refs < 50 {
		t.Errorf("only %d $refs found; the walk is broken", refs)
	}

	// Hand-written but kept in one canonical layout (2-space indent), so
	// diffs stay readable.
	var want bytes.Buffer
	if err := json.Indent(&want, bytes.TrimSpace(openAPI), "", "  "); err != nil {
		t.Fatal(err)
	}
	want.WriteByte('\n')
	if !bytes.Equal(openAPI, want.Bytes()) {
		t.Error("openapi.json is not pretty-printed with a 2-space indent (python3 -m json.tool --indent 2 --no-ensure-ascii fixes it)")
	}

	// Every operation: a unique operationId, responses, declared path
	// parameters, and problem bodies for its errors.
	ids := map[string]string{}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	for p, v := range doc["paths"].(map[string]any) {
		for m, o := range v.(map[string]any) {
			op := o.(map[string]any)
			where := strings.ToUpper(m) + " " + p
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] != "" {
				t.Errorf("%s: operationId %q missing or also used by %s", where, id, ids[id])
			}
			ids[id] = where
			declared := map[string]bool{}
			for _, prm := range op["parameters"].([]any) {
				prm := deref(t, doc, prm)
				if prm["in"] == "path" {
					declared[prm["name"].(string)] = true
				}
			}
			for _, sm := range pathParam.FindAllStringSubmatch(p, -1) {
				if !declared[sm[1]] {
					t.Errorf("%s: path parameter %s is not declared", where, sm[1])
				}
			}
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			if responses["500"] == nil {
				t.Errorf("%s: no 500 response", where)
			}
			for status, r := range responses {
				r := deref(t, doc, r)
				if h, _ := r["headers"].(map[string]any); h["X-Trace-Id"] == nil {
					t.Errorf("%s %s: no X-Trace-Id header", where, status)
				}
				if status >= "400" && !(p == "/api/v1/readyz" && status == "503") {
					if c, _ := r["content"].(map[string]any); c["application/problem+json"] == nil {
						t.Errorf("%s %s: not a problem body", where, status)
					}
				}
			}
			if _, public := op["security"]; !public && responses["401"] == nil {
				t.Errorf("%s: needs a token but documents no 401", where)
			}
		}
	}
}

func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		r, err := resolve(doc, ref)
		if err != nil {
			t.Fatal(err)
		}
		m, _ = r.(map[string]any)
	}
	return m
}

// jsonFields lists the JSON members of a struct type and which of them are
// always present (no omitempty or omitzero).
func jsonFields(typ reflect.Type) (names, always []string) {
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	sort.Strings(names)
	sort.Strings(always)
	return names, always
}

// TestSchemasMatchGoTypes checks each schema's members against the Go type
// that is encoded (or decoded) for it: same names, and for responses the
// members that are always present are exactly the required ones.
func TestSchemasMatchGoTypes(t *testing.T) {
	doc := loadDoc(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, tc := range []struct {
		schema  string
		typ     reflect.Type
		request bool // required lists what clients must send, not what Go always encodes
	}{
		{"Problem", reflect.TypeFor[Problem](), false},
		{"FieldError", reflect.TypeFor[FieldError](), false},
		{"CheckView", reflect.TypeFor[checkView](), false},
		{"Me", reflect.TypeFor[meView](), false},
		{"UserDetails", reflect.TypeFor[gymbro.UserDetails](), false},
		{"Usage", reflect.TypeFor[gymbro.Usage](), false},
		{"PostMessageRequest", reflect.TypeFor[postMessageRequest](), true},
		{"PostMessageResponse", reflect.TypeFor[postMessageResponse](), false},
		{"ErrorView", reflect.TypeFor[errorView](), false},
		{"MessageView", reflect.TypeFor[messageView](), false},
		{"Conversation", reflect.TypeFor[gymbro.Conversation](), false},
		{"ConversationPage", reflect.TypeFor[page[*gymbro.Conversation]](), false},
		{"MessagePage", reflect.TypeFor[page[messageView]](), false},
		{"Event", reflect.TypeFor[gymbro.Event](), false},
		{"TestUserRequest", reflect.TypeFor[gymbro.TestUserRequest](), true},
		{"TestUser", reflect.TypeFor[gymbro.TestUser](), false},
		{"Credentials", reflect.TypeFor[Credentials](), false},
		{"ConsoleConfig", reflect.TypeFor[ConsoleConfig](), false},
	} {
		s, _ := schemas[tc.schema].(map[string]any)
		if s == nil {
			t.Errorf("no schema %s", tc.schema)
			continue
		}
		names, always := jsonFields(tc.typ)
		var props, required []string
		for k := range s["properties"].(map[string]any) {
			props = append(props, k)
		}
		required = schemaList(s["required"])
		sort.Strings(props)
		sort.Strings(required)
		if !slices.Equal(props, names) {
			t.Errorf("%s: properties %v, Go %s encodes %v", tc.schema, props, tc.typ, names)
		}
		if !tc.request && !slices.Equal(required, always) {
			t.Errorf("%s: required %v, Go %s always encodes %v", tc.schema, required, tc.typ, always)
		}
	}
	var statuses []string
	for _, s := range schemas["Status"].(map[string]any)["enum"].([]any) {
		statuses = append(statuses, s.(string))
	}
	for _, s := range []gymbro.Status{gymbro.StatusQueued, gymbro.StatusWorking, gymbro.StatusCompleted, gymbro.StatusFailed, gymbro.StatusCanceled, gymbro.StatusInterrupted} {
		if !slices.Contains(statuses, string(s)) {
			t.Errorf("Status enum lacks %q", s)
		}
	}
}

// validate checks v against the subset of JSON Schema the document uses.
// An object schema with properties and no additionalProperties is treated
// as closed, so an undocumented member in a real answer fails the test.
func validate(doc map[string]any, schema map[string]any, v any, at string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		r, err := resolve(doc, ref)
		if err != nil {
			return []string{at + ": " + err.Error()}
		}
		return validate(doc, r.(map[string]any), v, at)
	}
	if alts, ok := schema["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(validate(doc, a.(map[string]any), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			return []string{fmt.Sprintf("%s: %v matches %d of oneOf", at, v, n)}
		}
		return nil
	}
	if c, ok := schema["const"]; ok && !reflect.DeepEqual(c, v) {
		return []string{fmt.Sprintf("%s: %v, want %v", at, v, c)}
	}
	if e, ok := schema["enum"].([]any); ok && !slices.Contains(e, v) {
		return []string{fmt.Sprintf("%s: %v is not one of %v", at, v, e)}
	}
	var errs []string
	switch schema["type"] {
	case "string":
		if _, ok := v.(string); !ok {
			return []string{fmt.Sprintf("%s: %v is not a string", at, v)}
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return []string{fmt.Sprintf("%s: %v is not an integer", at, v)}
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return []string{fmt.Sprintf("%s: %v is not a boolean", at, v)}
		}
	case "null":
		if v != nil {
			return []string{fmt.Sprintf("%s: %v is not null", at, v)}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v is not an array", at, v)}
		}
		for i, item := range a {
			errs = append(errs, validate(doc, schema["items"].(map[string]any), item, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v is not an object", at, v)}
		}
		for _, r := range schemaList(schema["required"]) {
			if _, ok := o[r]; !ok {
				errs = append(errs, at+": lacks required "+r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, val := range o {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(doc, ps, val, at+"."+k)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case map[string]any:
				errs = append(errs, validate(doc, ap, val, at+"."+k)...)
			case bool:
				if !ap {
					errs = append(errs, at+": undocumented member "+k)
				}
			case nil:
				if props != nil {
					errs = append(errs, at+": undocumented member "+k)
				}
			}
		}
	}
	return errs
}

func schemaList(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

// TestLiveAnswersMatchDocument sends real requests through the whole
// middleware chain and checks each answer against the status, headers and
// schema the document gives for it.
func TestLiveAnswersMatchDocument(t *testing.T) {
	doc := loadDoc(t)
	checks := []Check{
		{Name: "store", Check: func(context.Context) (map[string]any, error) { return nil, nil }},
		{Name: "outbox", Check: func(context.Context) (map[string]any, error) {
			return map[string]any{"dead": 0}, nil
		}},
		{Name: "event_log", Check: func(context.Context) (map[string]any, error) {
			return nil, gymbro.Wrap(errors.New("dial tcp 10.0.0.7:6379: connection refused"), gymbro.KindUnavailable, gymbro.CodeUnavailable, "The event log is unavailable.")
		}},
	}
	plain := New(nil, nil, Options{Checks: checks[:2], Logger: quietLogger()})
	failing := New(nil, nil, Options{Checks: checks, Logger: quietLogger()})
	configured := New(nil, nil, Options{Logger: quietLogger(), ConsoleConfig: func() ConsoleConfig {
		return ConsoleConfig{Env: "development", AuthURL: "http://127.0.0.1:8080/auth/v1", AnonKey: "anon", Emulator: true,
			TestUsersEnabled: true, DevOperator: &Credentials{Email: "operator@gymbro.local", Password: "pw"}, Version: "dev"}
	}})
	for _, tc := range []struct {
		name        string
		srv         *Server
		method, url string
		header      []string
		op          string // the documented operation, "METHOD /path"
		status      int
		contentType string
		code        string // the problem's code
		extraHeader []string
	}{
		{"healthz", plain, "GET", "/api/v1/healthz", nil, "GET /api/v1/healthz", 200, "application/json", "", nil},
		{"readyz up", plain, "GET", "/api/v1/readyz", nil, "GET /api/v1/readyz", 200, "application/json", "", nil},
		{"readyz down", failing, "GET", "/api/v1/readyz", nil, "GET /api/v1/readyz", 503, "application/json", "", nil},
		{"console config default", plain, "GET", "/api/v1/console/config", nil, "GET /api/v1/console/config", 200, "application/json", "", nil},
		{"console config", configured, "GET", "/api/v1/console/config", nil, "GET /api/v1/console/config", 200, "application/json", "", nil},
		{"me without token", plain, "GET", "/api/v1/me", nil, "GET /api/v1/me", 401, "application/problem+json", "token_missing",
			[]string{"WWW-Authenticate", `Bearer realm="gymbro"`}},
		{"post with basic auth", plain, "POST", "/api/v1/messages", []string{"Authorization", "Basic Zm9vOmJhcg=="}, "POST /api/v1/messages", 401, "application/problem+json", "token_malformed",
			[]string{"WWW-Authenticate", `Bearer realm="gymbro", error="invalid_token", error_description="The Authorization header must be Bearer <token>."`}},
		{"events without token", plain, "GET", "/api/v1/messages/0197a3c2-5b1e-7c4d-9f2a-3e8b1d6c4a10/events", nil, "GET /api/v1/messages/{id}/events", 401, "application/problem+json", "token_missing", nil},
		{"test user without token", plain, "POST", "/api/v1/llm/tests/create-mail-user", nil, "POST /api/v1/llm/tests/create-mail-user", 401, "application/problem+json", "token_missing", nil},
		{"unknown path", plain, "GET", "/api/v1/nope", nil, "", 404, "application/problem+json", "not_found", nil},
		{"wrong method", plain, "DELETE", "/api/v1/messages", nil, "", 405, "application/problem+json", "method_not_allowed", []string{"Allow", "POST"}},
		{"client trace id", plain, "GET", "/api/v1/healthz", []string{"X-Trace-Id", "app-ios.5f3c2a"}, "GET /api/v1/healthz", 200, "application/json", "", []string{"X-Trace-Id", "app-ios.5f3c2a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.url, nil)
			for i := 0; i < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			rec := httptest.NewRecorder()
			tc.srv.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if rec.Header().Get("X-Trace-Id") == "" {
				t.Error("no X-Trace-Id")
			}
			for i := 0; i < len(tc.extraHeader); i += 2 {
				// The console's catch-all GET / matches every path, so Allow
				// also lists GET and HEAD; the route's own method must be there.
				got := rec.Header().Get(tc.extraHeader[i])
				if tc.extraHeader[i] == "Allow" && strings.Contains(got, tc.extraHeader[i+1]) {
					continue
				}
				if got != tc.extraHeader[i+1] {
					t.Errorf("%s = %q, want %q", tc.extraHeader[i], got, tc.extraHeader[i+1])
				}
			}
			var body any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			schema := map[string]any{"$ref": "#/components/schemas/Problem"}
			if tc.op != "" {
				method, path, _ := strings.Cut(tc.op, " ")
				op := doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
				resp := deref(t, doc, op["responses"].(map[string]any)[strconv.Itoa(tc.status)])
				if resp == nil {
					t.Fatalf("%s documents no %d", tc.op, tc.status)
				}
				media, _ := resp["content"].(map[string]any)[tc.contentType].(map[string]any)
				if media == nil {
					t.Fatalf("%s %d documents no %s", tc.op, tc.status, tc.contentType)
				}
				schema = media["schema"].(map[string]any)
				if tc.code != "" && !strings.Contains(resp["description"].(string), "`"+tc.code+"`") {
					t.Errorf("%s %d does not name code %s", tc.op, tc.status, tc.code)
				}
			}
			for _, e := range validate(doc, schema, body, "body") {
				t.Error(e)
			}
			if tc.code != "" {
				p := body.(map[string]any)
				if p["code"] != tc.code || p["request_id"] != rec.Header().Get("X-Trace-Id") || p["status"] != float64(tc.status) {
					t.Errorf("problem = %v, want code %s, status %d and request_id = X-Trace-Id", p, tc.code, tc.status)
				}
			}
		})
	}
}

// TestExamplesMatchSchemas keeps the document's JSON examples true to their
// schemas, so what Swagger UI shows is what the API sends.
func TestExamplesMatchSchemas(t *testing.T) {
	doc := loadDoc(t)
	n := 0
	walk(doc, "#", func(at string, obj map[string]any) {
		content, ok := obj["content"].(map[string]any)
		if !ok {
			return
		}
		for mt, v := range content {
			media, _ := v.(map[string]any)
			schema, _ := media["schema"].(map[string]any)
			if !strings.HasSuffix(mt, "json") || schema == nil {
				continue
			}
			var examples []any
			if ex, ok := media["example"]; ok {
				examples = append(examples, ex)
			}
			if exs, ok := media["examples"].(map[string]any); ok {
				for _, ex := range exs {
					examples = append(examples, ex.(map[string]any)["value"])
				}
			}
			for _, ex := range examples {
				n++
				for _, e := range validate(doc, schema, ex, at+"/content/"+mt) {
					t.Error(e)
				}
			}
		}
	})
	if n < 15 {
		t.Errorf("only %d examples checked", n)
	}
}

// TestResetEventMatchesDocument checks the data of `event: reset`, which is
// built from a map rather than a struct, against its schema.
func TestResetEventMatchesDocument(t *testing.T) {
	doc := loadDoc(t)
	rec := httptest.NewRecorder()
	sw := responseWriter(rec)
	sw.reset("0197a3c2-5b1e-7c4d-9f2a-3e8b1d6c4a10", 7, []gymbro.Event{{Seq: 1}})
	if err := sw.flush(); err != nil {
		t.Fatal(err)
	}
	frame := rec.Body.String()
	data, ok := strings.CutPrefix(frame, "event: reset\ndata: ")
	if !ok || !strings.HasSuffix(data, "\n\n") || strings.Contains(frame, "id:") {
		t.Fatalf("reset frame %q", frame)
	}
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatal(err)
	}
	for _, e := range validate(doc, map[string]any{"$ref": "#/components/schemas/ResetEvent"}, v, "reset") {
		t.Error(e)
	}
}

func TestServeOpenAPI(t *testing.T) {
	s := New(nil, nil, Options{Logger: quietLogger()})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), openAPI) {
		t.Error("the served document differs from openapi.json")
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Errorf("served document: %v, openapi %v", err, doc["openapi"])
	}

	// Without a console build /docs still names the description, and loads
	// nothing from another origin.
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `href="/api/v1/openapi.json"`) || strings.Contains(rec.Body.String(), "https://") {
		t.Errorf("/docs without the console: %d %s", rec.Code, rec.Body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("/docs CSP %q", csp)
	}

	// With the console built, /docs is its docs page (Swagger UI bundled).
	page := "<!doctype html><script type=module src=/assets/docs-x.js></script>"
	s = New(nil, nil, Options{Logger: quietLogger(), Console: fstest.MapFS{
		"index.html": {Data: []byte("console")}, "docs.html": {Data: []byte(page)},
	}})
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != page || rec.Header().Get("Content-Security-Policy") != docsCSP {
		t.Errorf("/docs with the console: %d %q", rec.Code, rec.Body)
	}
}

// clientCodes is every error code a client can see, in a problem body or in
// an SSE error event, collected from the packages that define them.
var clientCodes = []string{
	// Bearer token verification (internal/auth Code*; token_missing from httpapi).
	"token_missing", "token_malformed", "token_too_large", "token_expired", "token_not_yet_valid",
	"signature_invalid", "issuer_unknown", "audience_mismatch", "algorithm_not_allowed",
	"key_not_found", "kid_missing", "claim_missing", "claim_invalid", "header_invalid", "keys_unavailable",
	// Session checks on costly writes (supabase).
	gymbro.CodeSessionRevoked, gymbro.CodeAuthUnavailable,
	// Request decoding and validation (httpapi, chat).
	gymbro.CodeInvalidJSON, "invalid_utf8", gymbro.CodeBodyTooLarge, "unsupported_media_type", gymbro.CodeInvalidRequest,
	chat.CodeTextEmpty, chat.CodeTextTooLong, chat.CodeTextInvalidUTF8, chat.CodeTextControlCharacter, chat.CodeInvalidConversationID,
	chat.CodeIdempotencyKeyInvalid, "invalid_limit", "invalid_last_event_id",
	// Chat and store (chat, sqlite, postgres).
	chat.CodeMessageNotFound, "conversation_not_found", "idempotency_conflict", "invalid_cursor",
	chat.CodeAlreadyFinished, "message_terminal", chat.CodeTooManyRunning, gymbro.CodeRateLimited,
	gymbro.CodeUnavailable, "store_timeout",
	// Generation, in SSE error events and MessageView.error (gymbro, chat, openai, demo).
	gymbro.CodeAITimeout, gymbro.CodeAIRateLimited, gymbro.CodeAIUnavailable, gymbro.CodeAIBadRequest,
	gymbro.CodeInterrupted, chat.CodePersistFailed,
	// One-click test users (testusers, mailapi).
	"test_users_disabled", "not_an_operator", "prefix_not_allowed", "service_role_key_missing",
	"supabase_unavailable", "supabase_rejected", "token_unverifiable", "mail_api_failed",
	"mail_api_not_configured", "username_taken", "username_contended",
	// /me?details=true (supabase).
	"user_not_found", "supabase_timeout", "supabase_bad_response",
	// Routing and the rest.
	gymbro.CodeNotFound, gymbro.CodeMethodNotAllowed, gymbro.CodeInternal,
	// Hostile clients and pages (httpapi).
	CodeBodyTimeout, CodeHostNotAllowed, CodeTooManyStreams, "test_user_not_yours", "test_user_cannot_create",
}

func TestEveryCodeIsDocumented(t *testing.T) {
	md, err := os.ReadFile("../../docs/API_CONTRACTS.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range clientCodes {
		if !bytes.Contains(md, []byte("`"+code+"`")) {
			t.Errorf("docs/API_CONTRACTS.md does not document code %s", code)
		}
		if !bytes.Contains(openAPI, []byte(code)) {
			t.Errorf("openapi.json does not mention code %s", code)
		}
	}
	// The table has one row per code.
	for _, code := range clientCodes {
		if n := bytes.Count(md, []byte("\n| `"+code+"` |")); n != 1 {
			t.Errorf("docs/API_CONTRACTS.md has %d rows for code %s in the error table, want 1", n, code)
		}
	}
}
