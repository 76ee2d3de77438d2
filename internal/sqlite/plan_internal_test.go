package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestHotReadPlans checks that the reads every POST and generation make are
// answered from an index, as EXPLAIN QUERY PLAN reports it: a lost index or a
// rewritten query would otherwise show up only as a slower benchmark.
func TestHotReadPlans(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name, query, want string
		args              []any
	}{
		{"CountRunning", qCountRunning, "USING COVERING INDEX messages_running", []any{"u"}},
		{"History", qHistory, "USING INDEX messages_conversation_created", []any{"c", 5}},
		{"HistoryBefore", qHistoryBefore, "USING INDEX messages_conversation_created", []any{"c", 1, 1, "m", 5}},
		{"Message", qGetMsg, "USING INDEX sqlite_autoindex_messages_1", []any{"m"}},
	} {
		rows, err := db.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(plan, "; ")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: plan %q, want it to contain %q", tc.name, got, tc.want)
		}
		if strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("%s: plan %q sorts in a temporary b-tree", tc.name, got)
		}
	}
}
