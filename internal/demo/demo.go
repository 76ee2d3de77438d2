// Package demo is GymBro's embedded AI coach: a local, deterministic
// gymbro.Model that needs no API key, so `make run` streams real replies on a
// laptop and tests exercise the whole generation path without a network.
//
// Given the same turns it gives the same reply, chosen from a few coaching
// templates by keywords in the last user turn (squat, bench, run, diet or
// protein, sleep, otherwise general advice). The reply quotes the user's
// question (without the markers below) and says it comes from the demo
// model. It streams as several word groups with a pause (Options.ChunkDelay)
// between them, so clients see the same multi-event SSE stream a hosted
// model produces.
//
// Two markers in the last user turn drive failure paths deterministically,
// for tests and demos of the error handling:
//
//   - "[demo:error]": the first chunk is emitted, then Stream fails with a
//     *gymbro.Error of KindUnavailable and code ai_unavailable, as a hosted
//     model dropping mid-reply would.
//   - "[demo:slow]": every pause is ten times ChunkDelay, to watch
//     cancellation and heartbeats at work.
package demo

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// ModelName is what the demo coach reports as its model.
const ModelName = "gymbro-demo-coach"

// DefaultChunkDelay is the pause between chunks when Options leaves it zero:
// about the pace of a hosted model, so the console shows a live stream.
const DefaultChunkDelay = 40 * time.Millisecond

// Markers recognised in the last user turn; see the package doc.
const (
	MarkerError = "[demo:error]"
	MarkerSlow  = "[demo:slow]"
)

// wordsPerChunk is how many words go into one delta.
const wordsPerChunk = 3

// quoteLimit bounds the echoed question, in runes.
const quoteLimit = 80

// Options configures the demo coach.
type Options struct {
	// ChunkDelay is the pause between chunks. Zero means DefaultChunkDelay;
	// a negative value means no pause at all (what tests want).
	ChunkDelay time.Duration
}

// Model is the demo coach. It is safe for concurrent use and holds no
// state between calls.
type Model struct {
	delay time.Duration
}

// New returns a demo coach.
func New(opts Options) *Model {
	d := opts.ChunkDelay
	switch {
	case d == 0:
		d = DefaultChunkDelay
	case d < 0:
		d = 0
	}
	return &Model{delay: d}
}

// Name returns "gymbro-demo-coach".
func (m *Model) Name() string { return ModelName }

// Stream writes the coach's reply to req through emit, one word group at a
// time. It returns ctx's error as soon as ctx ends, the error of emit
// unchanged, or ai_unavailable when the last user turn holds MarkerError.
func (m *Model) Stream(ctx context.Context, req gymbro.ModelRequest, emit func(delta string) error) (gymbro.ModelResult, error) {
	question := lastUserTurn(req.Turns)
	reply := Reply(question)
	parts := chunks(reply)
	delay := m.delay
	if strings.Contains(question, MarkerSlow) {
		delay *= 10
	}
	fail := strings.Contains(question, MarkerError)

	var timer *time.Timer
	if delay > 0 {
		timer = time.NewTimer(delay)
		defer timer.Stop()
	}
	for i, chunk := range parts {
		if i > 0 && timer != nil {
			timer.Reset(delay)
			select {
			case <-ctx.Done():
				return gymbro.ModelResult{}, ctx.Err()
			case <-timer.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return gymbro.ModelResult{}, err
		}
		if err := emit(chunk); err != nil {
			return gymbro.ModelResult{}, err
		}
		if fail {
			return gymbro.ModelResult{}, gymbro.Errorf(gymbro.KindUnavailable, gymbro.CodeAIUnavailable,
				"The demo coach failed on purpose (%s marker).", MarkerError)
		}
	}

	prompt := countWords(req.System)
	for _, t := range req.Turns {
		prompt += countWords(t.Content)
	}
	completion := countWords(reply)
	return gymbro.ModelResult{
		Model:        ModelName,
		FinishReason: "stop",
		Usage: gymbro.Usage{
			PromptTokens:     prompt,
			CompletionTokens: completion,
			TotalTokens:      prompt + completion,
		},
	}, nil
}

// lastUserTurn returns the content of the last user turn, or "".
func lastUserTurn(turns []gymbro.Turn) string {
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].Role == gymbro.RoleUser {
			return turns[i].Content
		}
	}
	return ""
}

// topic is one coaching template and the keywords that select it.
type topic struct {
	keywords []string
	advice   string
}

// topics are tried in order; the first whose keyword starts a word of the
// question wins, so a question about squats and sleep gets the squat
// template every time. The table is read-only.
var topics = [...]topic{
	{
		keywords: []string{"squat"},
		advice: "For squats, brace your core before you descend, keep your whole foot planted, and let your knees track over your toes. " +
			"Sit down between your hips rather than back, reach at least parallel if your mobility allows, and drive up through mid-foot. " +
			"Start with three sets of five at a weight you can move with perfect form, and add 2.5 kg a session while every rep stays clean.",
	},
	{
		keywords: []string{"bench"},
		advice: "For the bench press, pull your shoulder blades together and down, keep a slight arch, and plant your feet. " +
			"Lower the bar under control to your lower chest with elbows about 45 degrees from your body, then press back up over your shoulders. " +
			"Always use a spotter or safety arms when you work near your limit.",
	},
	{
		keywords: []string{"run", "jog", "cardio", "marathon", "5k", "10k"},
		advice: "For running, keep most of your weekly kilometres easy: a pace where you could still hold a conversation. " +
			"Add one session of intervals or a tempo run, raise weekly volume by no more than about ten percent, and take a lighter week every fourth week. " +
			"Land with your foot under your hips and keep your cadence quick and light.",
	},
	{
		keywords: []string{"diet", "protein", "nutrition", "calorie", "eat", "meal"},
		advice: "For nutrition, aim for roughly 1.6 to 2.2 g of protein per kg of body weight a day, spread over three or four meals. " +
			"Build each plate around a protein source, vegetables and a portion of whole-grain carbs, and drink water through the day. " +
			"For fat loss eat about 300 to 500 kcal below maintenance; to build muscle, slightly above it.",
	},
	{
		keywords: []string{"sleep", "rest", "recover", "tired"},
		advice: "For recovery, give yourself seven to nine hours of sleep on a regular schedule; that is when most muscle repair happens. " +
			"Keep the bedroom dark and cool, stop caffeine about eight hours before bed, and put screens away for the last half hour. " +
			"If you feel run down for several days, take a deload week with lighter weights.",
	},
}

// generalAdvice answers anything no template matches.
const generalAdvice = "A solid plan trains each muscle group about twice a week with compound lifts (squat, hinge, push, pull and carry), " +
	"adds a little weight or a rep when the last set feels easy, and pairs the training with enough protein and sleep. " +
	"Warm up for five to ten minutes, keep a simple log of your sessions, and stay consistent for twelve weeks before judging the results."

// Reply returns the demo coach's full answer to question. It is the
// concatenation of everything Stream emits for the same question.
func Reply(question string) string {
	advice := generalAdvice
	words := strings.FieldsFunc(strings.ToLower(question), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
outer:
	for _, t := range topics {
		for _, k := range t.keywords {
			for _, w := range words {
				// A prefix match takes "squats" and "running" but not
				// "great" for "eat".
				if strings.HasPrefix(w, k) {
					advice = t.advice
					break outer
				}
			}
		}
	}
	var b strings.Builder
	if q := quote(question); q != "" {
		b.WriteString("You asked: \u201c")
		b.WriteString(q)
		b.WriteString("\u201d ")
	}
	b.WriteString(advice)
	b.WriteString(" (This is the GymBro demo coach: a built-in model for local use. Set OPENAI_API_KEY for real AI answers.)")
	return b.String()
}

// quote shortens question to one line of at most quoteLimit runes,
// without the markers: they steer the demo, they are not what was asked.
func quote(question string) string {
	question = strings.NewReplacer(MarkerError, "", MarkerSlow, "").Replace(question)
	q := strings.Join(strings.Fields(question), " ")
	if utf8.RuneCountInString(q) <= quoteLimit {
		return q
	}
	n := 0
	for i := range q {
		if n == quoteLimit-1 {
			return strings.TrimRight(q[:i], " ") + "\u2026"
		}
		n++
	}
	return q
}

// chunks splits reply into the deltas Stream emits: groups of a few words,
// each keeping its trailing space, so they concatenate back to reply.
func chunks(reply string) []string {
	var out []string
	start, words := 0, 0
	inWord := false
	for i, r := range reply {
		space := r == ' '
		if !space && !inWord {
			if words == wordsPerChunk {
				out = append(out, reply[start:i])
				start, words = i, 0
			}
			words++
		}
		inWord = !space
	}
	if start < len(reply) {
		out = append(out, reply[start:])
	}
	return out
}

// countWords approximates a token count: close enough for a demo's usage.
func countWords(s string) int64 {
	return int64(len(strings.Fields(s)))
}
