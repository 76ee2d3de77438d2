package config

import (
	"strings"
	"testing"
	"time"
)

func TestDatabaseTopology(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabasePooler != PoolerSession || c.DatabaseTimeout != 3*time.Second || c.StoreGrace != 10*time.Second {
		t.Errorf("defaults: pooler %q, timeout %v, store grace %v", c.DatabasePooler, c.DatabaseTimeout, c.StoreGrace)
	}
	c, err = Load(env(map[string]string{"GYMBRO_DATABASE_POOLER": "Transaction", "GYMBRO_DATABASE_TIMEOUT": "2s", "GYMBRO_STORE_OUTAGE_GRACE": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabasePooler != PoolerTransaction || c.DatabaseTimeout != 2*time.Second || c.StoreGrace != 5*time.Second {
		t.Errorf("set: pooler %q, timeout %v, store grace %v", c.DatabasePooler, c.DatabaseTimeout, c.StoreGrace)
	}
	_, err = Load(env(map[string]string{"GYMBRO_DATABASE_POOLER": "statement", "GYMBRO_DATABASE_TIMEOUT": "0s"}))
	for _, name := range []string{"GYMBRO_DATABASE_POOLER", "GYMBRO_DATABASE_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), name+" ") {
			t.Errorf("an invalid %s is not reported: %v", name, err)
		}
	}
}
