// Package mailapi creates real temporary inboxes through a hosted mail API,
// so a one-click test user can have an address that actually receives mail
// (confirmation links, password resets). The key is the caller's: it is used
// for one call and never kept or logged.
package mailapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// CodeMailAPIFailed is the code of every failure to get an inbox: a refused
// key, an error answer, an unreadable answer or no answer at all.
const CodeMailAPIFailed = "mail_api_failed"

// ErrKeyRefused is in the chain of the error CreateInbox returns when the mail
// API answered 401 or 403: the key is wrong, expired or lacks the permission.
var ErrKeyRefused = errors.New("mailapi: the mail API key was refused")

// Provider creates temporary inboxes.
type Provider interface {
	// CreateInbox creates an inbox with the caller's apiKey and returns its
	// address. It fails with a *gymbro.Error of KindUpstream and code
	// mail_api_failed, whatever went wrong (the caller's own cancellation
	// excepted); a refused key also matches ErrKeyRefused.
	CreateInbox(ctx context.Context, apiKey string) (address string, err error)
}

// DefaultMailSlurpURL is MailSlurp's public API.
const DefaultMailSlurpURL = "https://api.mailslurp.com"

// MailSlurpOptions configures a MailSlurp provider.
type MailSlurpOptions struct {
	// BaseURL is the API root (GYMBRO_MAIL_API_URL); default
	// DefaultMailSlurpURL.
	BaseURL string
	// HTTPClient is the client to use; default a fresh *http.Client.
	HTTPClient *http.Client
	// Timeout bounds each call; default 10s.
	Timeout time.Duration
	// ExpiresIn, when positive, asks MailSlurp to expire the inbox after that
	// long (its expiresIn, in milliseconds). Zero leaves the account's
	// default.
	ExpiresIn time.Duration
}

// MailSlurp creates inboxes with MailSlurp's inbox controller:
// POST {BaseURL}/inboxes, authenticated by the x-api-key header, answering
// an Inbox whose emailAddress is the new address. It is safe for concurrent
// use.
type MailSlurp struct {
	base      string
	http      *http.Client
	timeout   time.Duration
	expiresIn time.Duration
}

// NewMailSlurp returns a MailSlurp provider, or an error when BaseURL is not
// an absolute http(s) URL.
func NewMailSlurp(opts MailSlurpOptions) (*MailSlurp, error) {
	base := strings.TrimRight(cmp.Or(opts.BaseURL, DefaultMailSlurpURL), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mailapi: BaseURL %q is not an absolute http(s) URL", base)
	}
	if opts.Timeout < 0 || opts.ExpiresIn < 0 {
		return nil, errors.New("mailapi: negative Timeout or ExpiresIn")
	}
	m := &MailSlurp{base: base, http: opts.HTTPClient, timeout: cmp.Or(opts.Timeout, 10*time.Second), expiresIn: opts.ExpiresIn}
	if m.http == nil {
		m.http = &http.Client{}
	}
	return m, nil
}

// LogValue shows only where the provider points.
func (m *MailSlurp) LogValue() slog.Value { return slog.StringValue(m.base) }

// maxAnswer bounds what is read of an answer: an Inbox is well under 4 KiB.
const maxAnswer = 64 << 10

// CreateInbox implements Provider. The key travels only in the x-api-key
// header (never the URL, which proxies log) and no error carries it.
func (m *MailSlurp) CreateInbox(ctx context.Context, apiKey string) (string, error) {
	if strings.TrimSpace(apiKey) == "" {
		return "", &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed,
			Message: "The mail API key is empty.", Err: ErrKeyRefused}
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	u := m.base + "/inboxes"
	if m.expiresIn > 0 {
		u += "?" + url.Values{"expiresIn": {strconv.FormatInt(m.expiresIn.Milliseconds(), 10)}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, http.NoBody)
	if err != nil {
		return "", gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "Bad mail API URL.")
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("Accept", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return "", transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return "", transportError(ctx, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed,
			Message: fmt.Sprintf("The mail API key was refused (HTTP %d); check mail_api_key.", resp.StatusCode),
			Err:     ErrKeyRefused}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		msg := fmt.Sprintf("The mail API failed to create an inbox (HTTP %d)", resp.StatusCode)
		if d := errorDetail(b); d != "" {
			msg += ": " + d
		}
		return "", &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed, Message: msg + ".",
			Err: fmt.Errorf("mailapi: POST /inboxes: %s", resp.Status)}
	case len(b) > maxAnswer:
		return "", gymbro.Errorf(gymbro.KindUpstream, CodeMailAPIFailed, "The mail API sent an oversized answer.")
	}
	var inbox struct {
		ID           string `json:"id"`
		EmailAddress string `json:"emailAddress"`
	}
	if err := json.Unmarshal(b, &inbox); err != nil {
		return "", gymbro.Wrap(err, gymbro.KindUpstream, CodeMailAPIFailed, "The mail API sent an answer we cannot read.")
	}
	addr, err := mail.ParseAddress(inbox.EmailAddress)
	if err != nil || addr.Address != inbox.EmailAddress {
		return "", gymbro.Wrap(fmt.Errorf("mailapi: bad emailAddress: %w", err), gymbro.KindUpstream, CodeMailAPIFailed,
			"The mail API answered without a usable emailAddress.")
	}
	return strings.ToLower(inbox.EmailAddress), nil
}

// errorDetail pulls a short, printable reason out of an error body. MailSlurp
// answers errors as {"message": "…"} (and Spring's {"error": "…"}); the text
// is theirs, not ours, and holds no key since the key went in a header.
func errorDetail(b []byte) string {
	var body struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ""
	}
	d := cmp.Or(body.Message, body.Error)
	d = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, d)
	if len(d) > 200 {
		d = d[:200]
	}
	return strings.TrimSpace(d)
}

// transportError keeps the caller's own cancellation distinct from an
// outage, so a closed browser tab is not reported as a mail API failure.
// Everything else is one 502: the mail API is a third party the console
// user chose, and a retry is theirs to decide.
func transportError(ctx context.Context, err error) error {
	return outage.NoAnswer(ctx, err, "mailapi",
		gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed, Message: "The mail API did not answer in time."},
		gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed, Message: "The mail API is unreachable."})
}
