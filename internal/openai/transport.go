package openai

import (
	"bytes"
	"io"
	"net/http"
	"time"
)

// Connection reuse. A generation's time to first token includes getting a
// connection to the model: one from the idle pool costs nothing, a new one
// a TCP handshake (and a TLS one, for a remote model) before the request
// can even be written. Two things would otherwise throw connections away.

// newTransport is the transport of a Model given no HTTPClient: the
// settings of http.DefaultTransport (proxy from the environment, dial and
// TLS timeouts, HTTP/2) with room in the idle pool for the connection of
// every generation that may be in flight, where DefaultTransport keeps two
// per host and a busy instance would dial for nearly every generation.
func newTransport(maxConcurrent int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxConcurrent
	t.MaxIdleConns = max(t.MaxIdleConns, maxConcurrent)
	return t
}

// reuseClient returns c with its transport wrapped by finishTransport, so
// that the end of a finished stream is read before its body is closed.
func reuseClient(c *http.Client) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc := *c
	cc.Transport = finishTransport{base: base}
	return &cc
}

// finishTransport wraps every response body in a finishingBody.
type finishTransport struct{ base http.RoundTripper }

func (t finishTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err == nil && res.Body != nil && res.Body != http.NoBody {
		res.Body = &finishingBody{ReadCloser: res.Body}
	}
	return res, err
}

// How long, and how far, a finishingBody reads for the end of a stream
// that sent [DONE]: a server ends its body right after it, so its end is
// usually in hand or microseconds away; one that keeps the body open
// costs this much once per reply, and then its connection.
const (
	finishWait  = 5 * time.Millisecond
	finishBytes = 4 << 10
)

// finishingBody is a streamed response body that, closed after the
// stream's [DONE] but before its end, reads that end first. The SDK stops
// reading at [DONE] and closes the body; an HTTP/1.1 body closed before
// its end (the chunked encoding's last chunk, which servers send right
// after the event) makes net/http close the connection instead of
// pooling it, which here happened to about one stream in twelve.
type finishingBody struct {
	io.ReadCloser
	tail [16]byte // the last bytes read, to recognise [DONE]
	n    int      // of tail in use
	eof  bool
}

func (b *finishingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.keepTail(p[:n])
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *finishingBody) keepTail(p []byte) {
	if len(p) >= len(b.tail) {
		b.n = copy(b.tail[:], p[len(p)-len(b.tail):])
		return
	}
	if b.n+len(p) > len(b.tail) {
		keep := len(b.tail) - len(p)
		copy(b.tail[:], b.tail[b.n-keep:b.n])
		b.n = keep
	}
	b.n += copy(b.tail[b.n:], p)
}

// done reports whether the bytes read so far end with the [DONE] event.
func (b *finishingBody) done() bool {
	return bytes.HasSuffix(bytes.TrimRight(b.tail[:b.n], "\r\n"), []byte("[DONE]"))
}

func (b *finishingBody) Close() error {
	if !b.eof && b.done() {
		// Closing the body is what ends a read that waits too long.
		cut := make(chan struct{})
		stop := time.AfterFunc(finishWait, func() { _ = b.ReadCloser.Close(); close(cut) })
		_, _ = io.CopyN(io.Discard, b.ReadCloser, finishBytes)
		if !stop.Stop() {
			<-cut
		}
	}
	return b.ReadCloser.Close()
}
