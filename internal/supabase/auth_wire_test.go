package supabase_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/supabase"
)

// TestAPIErrorShapes runs the client against a stand-in for hosted Supabase
// that answers with each error body Auth and its gateway have used.
func TestAPIErrorShapes(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		code   string
		msg    string
		kind   gymbro.Kind
	}{
		{"legacy", 422, nil, `{"code":422,"error_code":"email_exists","msg":"A user with this email address has already been registered"}`,
			"email_exists", "A user with this email address has already been registered", gymbro.KindUnprocessable},
		{"2024-01-01", 400, nil, `{"code":"invalid_credentials","message":"Invalid login credentials"}`,
			"invalid_credentials", "Invalid login credentials", gymbro.KindInvalid},
		{"oauth", 400, nil, `{"error":"invalid_grant","error_description":"Invalid Refresh Token: Already Used"}`,
			"invalid_grant", "Invalid Refresh Token: Already Used", gymbro.KindInvalid},
		{"legacy without error_code, header", 403, map[string]string{"X-Sb-Error-Code": "not_admin"}, `{"code":403,"msg":"User not allowed"}`,
			"not_admin", "User not allowed", gymbro.KindForbidden},
		{"gateway", 401, nil, `{"message":"Invalid API key","hint":"Double check your Supabase anon or service_role API key."}`,
			"", "Invalid API key", gymbro.KindUpstream}, // our key is wrong: never a 401 to our client
		{"gateway HTML", 502, nil, `<html><body>502 Bad Gateway</body></html>`,
			"", "Bad Gateway", gymbro.KindUpstream},
		{"not JSON", 502, map[string]string{"X-Sb-Error-Code": "upstream"}, `<html>bad gateway</html>`,
			"upstream", "Bad Gateway", gymbro.KindUnavailable},
		{"rate limited", 429, map[string]string{"Retry-After": "7"}, `{"code":429,"error_code":"over_request_rate_limit","msg":"Request rate limit reached"}`,
			"over_request_rate_limit", "Request rate limit reached", gymbro.KindRateLimited},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			}))
			defer srv.Close()
			client := supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, AnonKey: "sb_publishable_x", ServiceRoleKey: "sb_secret_x", HTTPClient: srv.Client()})
			_, err := client.SignInWithPassword(context.Background(), "a@x.io", "pw-123456")
			var ae *supabase.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if ae.Status != c.status || ae.Code != c.code || ae.Message != c.msg {
				t.Errorf("APIError = %+v, want %d %q %q", ae, c.status, c.code, c.msg)
			}
			if k := gymbro.ErrorKind(err); k != c.kind {
				t.Errorf("kind = %v, want %v", k, c.kind)
			}
			if ae.Code == "" && gymbro.ErrorCode(err) == "" {
				t.Errorf("an answer without an Auth code became an empty code")
			}
			if c.name == "gateway HTML" && (!ae.FromGateway() || gymbro.ErrorCode(err) != supabase.CodeSupabaseUnavailable ||
				!strings.Contains(gymbro.ErrorMessage(err), "HTTP 502")) {
				t.Errorf("gateway answer: %q %q", gymbro.ErrorCode(err), gymbro.ErrorMessage(err))
			}
			if c.status == 429 && ae.RetryAfter != 7*time.Second {
				t.Errorf("RetryAfter = %v", ae.RetryAfter)
			}
		})
	}
}

// TestClientRequests checks what the client puts on the wire: the paths
// under /auth/v1, which key goes where, and the legacy success shapes.
func TestClientRequests(t *testing.T) {
	type seen struct{ method, path, query, apikey, auth, version string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("apikey"), r.Header.Get("Authorization"), r.Header.Get("X-Supabase-Api-Version")}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/auth/v1/admin/users" && r.Method == http.MethodGet:
			w.Header().Set("X-Total-Count", "41")
			fmt.Fprint(w, `{"users":[{"id":"u1","email":"a@x.io","created_at":"2024-05-01T10:00:00.123456Z","updated_at":"2024-05-01T10:00:00Z","app_metadata":{},"user_metadata":{}}],"aud":"authenticated"}`)
		case r.URL.Path == "/auth/v1/token":
			fmt.Fprint(w, `{"access_token":"at","token_type":"bearer","expires_in":3600,"expires_at":1714560000,"refresh_token":"rt","user":{"id":"u1"}}`)
		case r.URL.Path == "/auth/v1/logout":
			w.WriteHeader(http.StatusNoContent)
		default:
			fmt.Fprint(w, `{"id":"u1"}`)
		}
	}))
	defer srv.Close()
	c := supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL + "/", AnonKey: "anon-key", ServiceRoleKey: "service-key",
		APIVersion: "2024-01-01", HTTPClient: srv.Client()})
	ctx := context.Background()

	users, total, err := c.ListUsers(ctx, 3, 20)
	if err != nil || total != 41 || len(users) != 1 || users[0].CreatedAt.Nanosecond() != 123456000 {
		t.Fatalf("ListUsers = %+v, %d, %v", users, total, err)
	}
	if s := <-got; s != (seen{"GET", "/auth/v1/admin/users", "page=3&per_page=20", "service-key", "Bearer service-key", "2024-01-01"}) {
		t.Errorf("list request %+v", s)
	}
	sess, err := c.RefreshSession(ctx, "rt0")
	if err != nil || sess.AccessToken != "at" || sess.ExpiresAt != 1714560000 || sess.User.ID != "u1" {
		t.Fatalf("RefreshSession = %+v, %v", sess, err)
	}
	if s := <-got; s != (seen{"POST", "/auth/v1/token", "grant_type=refresh_token", "anon-key", "", "2024-01-01"}) {
		t.Errorf("refresh request %+v", s)
	}
	if err := c.Logout(ctx, "user-token"); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != (seen{"POST", "/auth/v1/logout", "", "anon-key", "Bearer user-token", "2024-01-01"}) {
		t.Errorf("logout request %+v", s)
	}
	if _, err := c.UpdateUser(ctx, "u1", supabase.AdminUserParams{Password: "x"}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.method != "PUT" || s.path != "/auth/v1/admin/users/u1" {
		t.Errorf("update request %+v", s)
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c := supabase.NewAuthClient(supabase.AuthConfig{URL: url, ServiceRoleKey: "sb_secret_topsecret", HTTPClient: srv.Client()})
		_, err := c.GetUser(context.Background(), "u1")
		if gymbro.ErrorKind(err) != gymbro.KindUnavailable || gymbro.ErrorCode(err) != supabase.CodeSupabaseUnavailable {
			t.Errorf("err = %v, want KindUnavailable supabase_unavailable", err)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Error("error carries the key")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // never answers; the client must give up
		}))
		defer srv.Close()
		c := supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, HTTPClient: srv.Client(), Timeout: 20 * time.Millisecond})
		_, err := c.GetUserByToken(context.Background(), "tok")
		if gymbro.ErrorKind(err) != gymbro.KindTimeout || gymbro.ErrorCode(err) != supabase.CodeSupabaseTimeout {
			t.Errorf("err = %v, want KindTimeout supabase_timeout", err)
		}
	})
	t.Run("caller canceled", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c := supabase.NewAuthClient(supabase.AuthConfig{URL: srv.URL, HTTPClient: srv.Client()})
		_, err := c.GetUserByToken(ctx, "tok")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	cfg := supabase.AuthConfig{URL: "https://abc.supabase.co", AnonKey: "sb_publishable_AAAA", ServiceRoleKey: "eyJh.eyJz.sig"}
	log.Info("x", "cfg", cfg, "client", supabase.NewAuthClient(cfg),
		"session", supabase.Session{AccessToken: "access-secret", RefreshToken: "refresh-secret"},
		"params", supabase.AdminUserParams{Password: "pw-secret"})
	for _, s := range []string{"AAAA", "eyJz", "access-secret", "refresh-secret", "pw-secret"} {
		if strings.Contains(b.String(), s) {
			t.Errorf("log %q contains %q", b.String(), s)
		}
	}
}
