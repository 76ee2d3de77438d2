package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/joho/godotenv"
	"go.yaml.in/yaml/v3"
)

// composeVar is one ${…} of a compose file: a name, then nothing, or
// :-/- and a default, or :?/? and the error message.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate does what Docker Compose does to value with the variables of
// env (https://docs.docker.com/reference/compose-file/interpolation/):
// ${V}, ${V:-default} (unset or empty), ${V-default} (unset), ${V:?message}
// (an error when unset or empty) and ${V?message} (when unset).
func interpolate(value string, env map[string]string) (string, error) {
	var errs []string
	out := composeVar.ReplaceAllStringFunc(strings.ReplaceAll(value, "$$", "\x00"), func(ref string) string {
		m := composeVar.FindStringSubmatch(ref)
		v, set := env[m[1]]
		missing := !set || (v == "" && strings.HasPrefix(m[2], ":"))
		switch strings.TrimPrefix(m[2], ":") {
		case "-":
			if missing {
				return m[3]
			}
		case "?":
			if missing {
				errs = append(errs, fmt.Sprintf("required variable %s is missing a value: %s", m[1], m[3]))
			}
		}
		return v
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return strings.ReplaceAll(out, "\x00", "$"), nil
}

// composeEnv returns the instances' environment of deploy/compose.yaml
// with the variables of env, as Compose would pass it, or Compose's error.
func composeEnv(t *testing.T, env map[string]string) (map[string]string, error) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	vars, ok := doc["x-gymbro-env"].(map[string]any)
	if !ok || len(vars) == 0 {
		t.Fatal("deploy/compose.yaml has no x-gymbro-env mapping")
	}
	out := map[string]string{}
	var errs []string
	for k, v := range vars {
		s, err := interpolate(fmt.Sprint(v), env)
		if err != nil {
			errs = append(errs, err.Error())
		}
		out[k] = s
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// TestComposeRequiresWhatProductionRequires: deploy/compose.yaml with the
// example file filled in starts a production instance, and every setting
// production cannot start without is one Compose itself asks for, with its
// own message, instead of instances that restart in a loop.
func TestComposeRequiresWhatProductionRequires(t *testing.T) {
	example, err := godotenv.Read("../../deploy/.env.example")
	if err != nil {
		t.Fatal(err)
	}
	example["SUPABASE_URL"] = "https://abcd.supabase.co"
	example["SUPABASE_ANON_KEY"] = "sb_publishable_x"
	example["SUPABASE_SERVICE_ROLE_KEY"] = "sb_secret_x"
	env, err := composeEnv(t, example)
	if err != nil {
		t.Fatalf("compose with the example filled in: %v", err)
	}
	if _, err := Load(func(k string) string { return env[k] }); err != nil {
		t.Fatalf("the instances compose starts are refused:\n%v", err)
	}
	for _, name := range []string{"SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "GYMBRO_AI_PROVIDER"} {
		for _, unset := range []bool{true, false} {
			vars := map[string]string{}
			for k, v := range example {
				vars[k] = v
			}
			vars[name] = ""
			if unset {
				delete(vars, name)
			}
			_, err := composeEnv(t, vars)
			if err == nil || !strings.Contains(err.Error(), "required variable "+name+" is missing a value: set "+name) {
				t.Errorf("compose without %s (unset %v): %v", name, unset, err)
			}
		}
	}
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"A": "a", "E": ""}
	for in, want := range map[string]string{
		"${A}": "a", "${E:-d}": "d", "${E-d}": "", "${U-d}": "d", "${A:-d}": "a", "x$${A}": "x${A}", "${A:?m}": "a", "${E?m}": "",
	} {
		if got, err := interpolate(in, env); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"${E:?m}", "${U?m}", "${U:?m}"} {
		if _, err := interpolate(in, env); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}
