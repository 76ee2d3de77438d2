package modelrouter_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
)

// BenchmarkStream measures what the router adds to one 50-chunk reply:
// the model alone, through a router whose first model answers, and
// through one whose first model fails before answering (one fallback).
func BenchmarkStream(b *testing.B) {
	deltas := make([]string, 50)
	for i := range deltas {
		deltas[i] = "word "
	}
	ok := &fakeModel{name: "ok", script: answer(deltas...)}
	down := &fakeModel{name: "down", script: failing(gymbro.CodeAIUnavailable)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	router := func(routes ...modelrouter.Route) gymbro.Model {
		// A breaker that never opens, so every call takes the same path.
		r, err := modelrouter.New(routes, modelrouter.Options{Failures: 1 << 30, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	for _, bc := range []struct {
		name  string
		model gymbro.Model
	}{
		{"model alone", ok},
		{"router, first answers", router(modelrouter.Route{Name: "a", Model: ok}, modelrouter.Route{Name: "b", Model: down})},
		{"router, one fallback", router(modelrouter.Route{Name: "a", Model: down}, modelrouter.Route{Name: "b", Model: ok})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var req gymbro.ModelRequest
			if _, routed := bc.model.(*modelrouter.Router); routed {
				req.Answering = func(string) {}
			}
			emit := func(string) error { return nil }
			for b.Loop() {
				if _, err := bc.model.Stream(context.Background(), req, emit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
