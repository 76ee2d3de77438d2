package chat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/modelrouter"
)

// firstTokens is an observer that also hears each reply's first token.
type firstTokens struct {
	*observer
	got chan firstToken
}

type firstToken struct {
	model           string
	ttft, modelTTFT time.Duration
}

func (o firstTokens) FirstToken(model string, ttft, modelTTFT time.Duration) {
	o.got <- firstToken{model, ttft, modelTTFT}
}

// down is a model that fails before answering, as an unreachable one does.
type down struct{}

func (down) Name() string { return "down" }
func (down) Stream(context.Context, gymbro.ModelRequest, func(string) error) (gymbro.ModelResult, error) {
	return gymbro.ModelResult{}, gymbro.Wrap(errors.New("refused"), gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "down")
}

// TestFirstTokenObserved: every reply that streams reports its time to
// first token once, named after the model that answered (the router's
// name for it after a fallback), the model's part within the whole; a
// reply without a delta reports none.
func TestFirstTokenObserved(t *testing.T) {
	sc := &script{chunks: []string{"one ", "two"}}
	router, err := modelrouter.New([]modelrouter.Route{{Name: "primary", Model: down{}}, {Name: "backup", Model: sc}}, modelrouter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model gymbro.Model
		want  string
	}{{sc, "scripted"}, {router, "backup"}} {
		obs := firstTokens{got: make(chan firstToken, 10)}
		e := newEnv(t, sc, func(o *chat.Options) {
			obs.observer = o.Observer.(*observer)
			o.Observer, o.Model = obs, c.model
		})
		e.events(t, e.post(t, "hi").ID)
		e.awaitFinished(t)
		select {
		case ft := <-obs.got:
			if ft.model != c.want || ft.modelTTFT <= 0 || ft.ttft < ft.modelTTFT {
				t.Errorf("first token %+v, want model %s and 0 < model's ≤ whole", ft, c.want)
			}
		default:
			t.Fatalf("%s: no first token observed", c.want)
		}
		if len(obs.got) != 0 {
			t.Errorf("%s: %d more first tokens for one reply", c.want, len(obs.got))
		}
	}

	obs := firstTokens{got: make(chan firstToken, 10)}
	e := newEnv(t, &script{err: gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeAIUnavailable, "down")}, func(o *chat.Options) {
		obs.observer = o.Observer.(*observer)
		o.Observer = obs
	})
	e.events(t, e.post(t, "hi").ID)
	e.awaitFinished(t)
	if len(obs.got) != 0 {
		t.Errorf("a reply without a delta reported a first token: %+v", <-obs.got)
	}
}
