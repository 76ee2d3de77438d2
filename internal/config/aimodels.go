package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// AIModel is one OpenAI-compatible endpoint listed in GYMBRO_AI_CONFIG.
type AIModel struct {
	Name      string // what logs, metrics and the stored record call it
	BaseURL   string
	APIKey    Secret // read from APIKeyEnv; empty for a keyless server
	APIKeyEnv string // the variable api_key names (os.environ/NAME)
	Model     string // the model id sent with each request
	// MaxRetries is the file's max_retries, or -1 when it sets none: with
	// several models a fallback replaces retrying the same one.
	MaxRetries int
}

// AIRouting is the parsed GYMBRO_AI_CONFIG file: the models in the order
// a generation tries them, and each model's circuit breaker.
type AIRouting struct {
	Models          []AIModel // the fallback order
	BreakerFailures int       // consecutive failures that open a breaker
	BreakerCooldown time.Duration
}

// Breaker defaults and bounds for GYMBRO_AI_CONFIG.
const (
	DefaultBreakerFailures = 3
	DefaultBreakerCooldown = 30 * time.Second
	maxModelRetries        = 10
)

// Model names become metric labels and stored values, so they stay plain.
var (
	modelNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envRefRe    = regexp.MustCompile(`^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$`)
)

// ParseAIConfig parses the contents of a GYMBRO_AI_CONFIG file named
// path, reading the api_key variables through getenv. It returns every
// mistake at once, each with its line, and warnings for what it accepted
// but will not use.
func ParseAIConfig(path string, data []byte, getenv func(string) string) (*AIRouting, []string, error) {
	p := &aiParser{path: path, getenv: getenv, names: map[string]int{}}
	rt := p.parse(data)
	if len(p.problems) > 0 {
		return nil, nil, p.problems
	}
	return rt, p.warnings, nil
}

type aiParser struct {
	path     string
	getenv   func(string) string
	problems Problems
	warnings []string
	names    map[string]int // model name → line
}

func (p *aiParser) fail(line int, format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf("GYMBRO_AI_CONFIG %s:%d: ", p.path, line)+fmt.Sprintf(format, args...))
}

func (p *aiParser) parse(data []byte) *AIRouting {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml's message names the line ("yaml: line 3: …").
		p.problems = append(p.problems, fmt.Sprintf("GYMBRO_AI_CONFIG %s: %v", p.path, err))
		return nil
	}
	if len(doc.Content) == 0 {
		p.fail(1, "the file is empty; it must list models:")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.fail(root.Line, "must be a mapping with models: (and optionally fallback: and breaker:)")
		return nil
	}
	rt := &AIRouting{BreakerFailures: DefaultBreakerFailures, BreakerCooldown: DefaultBreakerCooldown}
	var models []AIModel
	var fallback *yaml.Node
	p.fields(root, "the top level", func(key string, v *yaml.Node) bool {
		switch key {
		case "models":
			models = p.models(v)
		case "fallback":
			fallback = v
		case "breaker":
			p.breaker(v, rt)
		default:
			return false
		}
		return true
	}, "models", "fallback", "breaker")
	if !p.has(root, "models") {
		p.fail(root.Line, "models: is required and must list at least one model")
	}
	rt.Models = p.order(models, fallback)
	return rt
}

// fields calls set for each key of mapping m and reports unknown and
// repeated keys; set returns false for a key it does not know.
func (p *aiParser) fields(m *yaml.Node, where string, set func(key string, v *yaml.Node) bool, known ...string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			p.fail(k.Line, "%q appears twice in %s (first at line %d)", k.Value, where, first)
			continue
		}
		seen[k.Value] = k.Line
		if !set(k.Value, v) {
			p.fail(k.Line, "unknown key %q in %s (known: %s)", k.Value, where, strings.Join(known, ", "))
		}
	}
}

func (p *aiParser) has(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// scalar returns v's text, or reports that field must be a plain value.
func (p *aiParser) scalar(field string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.fail(v.Line, "%s must be a plain value", field)
		return "", false
	}
	return strings.TrimSpace(v.Value), true
}

func (p *aiParser) models(v *yaml.Node) []AIModel {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.fail(v.Line, "models must be a list of at least one model (name, base_url, model, api_key)")
		return nil
	}
	var out []AIModel
	for _, item := range v.Content {
		if m, ok := p.model(item); ok {
			out = append(out, m)
		}
	}
	return out
}

// model reads one entry of models:, reporting every mistake in it.
func (p *aiParser) model(n *yaml.Node) (AIModel, bool) {
	if n.Kind != yaml.MappingNode {
		p.fail(n.Line, "each model must be a mapping with name, base_url, model and optionally api_key, max_retries")
		return AIModel{}, false
	}
	m := AIModel{MaxRetries: -1}
	before := len(p.problems)
	p.fields(n, "a model", func(key string, v *yaml.Node) bool {
		switch key {
		case "name":
			m.Name = p.modelName(v)
		case "base_url":
			m.BaseURL = p.baseURL(v)
		case "api_key":
			m.APIKeyEnv, m.APIKey = p.apiKey(v)
		case "model":
			m.Model, _ = p.scalar("model", v)
		case "max_retries":
			m.MaxRetries = p.integer("max_retries", v, 0, maxModelRetries)
		default:
			return false
		}
		return true
	}, "name", "base_url", "api_key", "model", "max_retries")
	for _, req := range []string{"name", "base_url", "model"} {
		if !p.has(n, req) {
			p.fail(n.Line, "the model needs %s:", req)
		}
	}
	if m.Name != "" {
		if first, dup := p.names[m.Name]; dup {
			p.fail(n.Line, "model name %q is used twice (first at line %d)", m.Name, first)
		} else {
			p.names[m.Name] = n.Line
		}
	}
	return m, len(p.problems) == before
}

func (p *aiParser) modelName(v *yaml.Node) string {
	s, ok := p.scalar("name", v)
	if ok && !modelNameRe.MatchString(s) {
		p.fail(v.Line, "name %q must be 1-64 letters, digits, '.', '_' or '-' (it labels metrics and stored records)", s)
		return ""
	}
	return s
}

func (p *aiParser) baseURL(v *yaml.Node) string {
	s, ok := p.scalar("base_url", v)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		p.fail(v.Line, "base_url must be an absolute http(s) URL, not %q", s)
	case u.User != nil:
		// Never echo it: the user info is a credential.
		p.fail(v.Line, "base_url must not carry credentials; name the key in api_key")
	default:
		return s
	}
	return ""
}

// apiKey resolves os.environ/NAME. A key written in the file is refused
// and never echoed: config files end up in repositories and tickets.
func (p *aiParser) apiKey(v *yaml.Node) (string, Secret) {
	s, ok := p.scalar("api_key", v)
	if !ok {
		return "", ""
	}
	sub := envRefRe.FindStringSubmatch(s)
	if sub == nil {
		p.fail(v.Line, "api_key must name an environment variable as os.environ/NAME; a key written in the file is refused (omit api_key for a keyless server)")
		return "", ""
	}
	key := strings.TrimSpace(p.getenv(sub[1]))
	if key == "" {
		p.fail(v.Line, "api_key names %s, which is not set", sub[1])
		return "", ""
	}
	return sub[1], Secret(key)
}

func (p *aiParser) integer(field string, v *yaml.Node, lo, hi int) int {
	s, ok := p.scalar(field, v)
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		p.fail(v.Line, "%s must be a whole number from %d to %d, not %q", field, lo, hi, s)
		return -1
	}
	return n
}

func (p *aiParser) breaker(v *yaml.Node, rt *AIRouting) {
	if v.Kind != yaml.MappingNode {
		p.fail(v.Line, "breaker must be a mapping with failures and cooldown")
		return
	}
	p.fields(v, "breaker", func(key string, v *yaml.Node) bool {
		switch key {
		case "failures":
			if n := p.integer("breaker.failures", v, 1, 1000); n > 0 {
				rt.BreakerFailures = n
			}
		case "cooldown":
			s, ok := p.scalar("breaker.cooldown", v)
			d, err := time.ParseDuration(s)
			if ok && (err != nil || d < time.Second || d > time.Hour) {
				p.fail(v.Line, "breaker.cooldown must be a duration from 1s to 1h, like 30s, not %q", s)
			} else if ok {
				rt.BreakerCooldown = d
			}
		default:
			return false
		}
		return true
	}, "failures", "cooldown")
}

// order returns the models in fallback's order (the file's order when
// fallback is absent), reporting names fallback lists that no model has.
func (p *aiParser) order(models []AIModel, fallback *yaml.Node) []AIModel {
	if fallback == nil {
		return models
	}
	if fallback.Kind != yaml.SequenceNode || len(fallback.Content) == 0 {
		p.fail(fallback.Line, "fallback must be a list of model names, like [primary, backup]")
		return nil
	}
	byName := map[string]AIModel{}
	for _, m := range models {
		byName[m.Name] = m
	}
	var out []AIModel
	listed := map[string]bool{}
	for _, n := range fallback.Content {
		name, ok := p.scalar("each fallback entry", n)
		switch {
		case !ok:
		case listed[name]:
			p.fail(n.Line, "fallback lists %q twice", name)
		case p.names[name] == 0:
			p.fail(n.Line, "fallback names %q, which is not a model in models:", name)
		default:
			listed[name] = true
			out = append(out, byName[name])
		}
	}
	for _, m := range models {
		if !listed[m.Name] {
			p.warnings = append(p.warnings, fmt.Sprintf("GYMBRO_AI_CONFIG %s: model %q is not in fallback: and is never used", p.path, m.Name))
		}
	}
	return out
}
