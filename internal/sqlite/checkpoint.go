package sqlite

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"
)

// checkpointer moves the WAL's pages into the database file off the
// commits' path. SQLite's own auto-checkpoint runs inside the commit that
// crosses its threshold (1,000 pages), on the one write connection: one
// exchange in a hundred waited ~13 ms for it, and every write queued behind
// that one. Instead the write connection has wal_autocheckpoint(0), and
// this goroutine runs a PASSIVE checkpoint on a connection of its own every
// `every` commits (a passive checkpoint never takes the write lock, so the
// writer keeps appending while it copies), and a TRUNCATE checkpoint through
// the write pool once the store has been idle for a tick, which resets the
// WAL file to zero bytes. SQLite starts the WAL afresh only when a writer
// begins after a checkpoint has copied all of it, which a checkpoint
// beside a busy writer may never see: when the WAL has grown past maxWAL
// frames, a second passive checkpoint runs through the write pool, where no
// writer can add to it, copies what the first one missed (the bulk is
// done), and the next commit starts the WAL from its beginning. So the WAL
// stays under about maxWAL frames (as with SQLite's own checkpoints, a
// reader holding one snapshot throughout could still hold it back).
type checkpointer struct {
	conn  *sql.DB // one connection, not query_only, used only here
	write *sql.DB // the write pool: TRUNCATE queues with the writers
	every int64
	tick  time.Duration
	max   int // WAL frames past which the writers wait for a checkpoint

	commits   atomic.Int64
	kick      chan struct{}
	ctx       context.Context // ends at close
	stop      context.CancelFunc
	done      chan struct{}
	passives  atomic.Int64 // checkpoints run, for tests
	truncates atomic.Int64
}

// maxWAL is SQLite's own auto-checkpoint threshold, in frames (pages).
const maxWAL = 1000

func newCheckpointer(conn, write *sql.DB, every int, tick time.Duration) *checkpointer {
	c := &checkpointer{conn: conn, write: write, every: int64(every), tick: tick, max: maxWAL,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	go c.run()
	return c
}

// committed counts one commit on the write connection; every `every`th
// wakes the checkpointer. It never blocks.
func (c *checkpointer) committed() {
	if c.commits.Add(1)%c.every != 0 {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.tick)
	defer t.Stop()
	var seen, truncated int64 // commits at the last tick and at the last TRUNCATE
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
			log, _, ok := c.checkpoint(c.conn, "PASSIVE", &c.passives)
			if ok && log >= c.max {
				c.checkpoint(c.write, "PASSIVE", &c.passives)
			}
		case <-t.C:
			n := c.commits.Load()
			if n == seen && n != truncated {
				// Idle for a whole tick after some writes.
				c.checkpoint(c.write, "TRUNCATE", &c.truncates)
				truncated = n
			}
			seen = n
		}
	}
}

// checkpoint runs one checkpoint of mode on db. A failure (a reader or
// another process in the way, SQLITE_BUSY) is left for the next one: the
// pages stay in the WAL, where readers find them.
// It reports the WAL's frames and how many of them are in the file.
func (c *checkpointer) checkpoint(db *sql.DB, mode string, count *atomic.Int64) (log, done int, ok bool) {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	var busy int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done); err != nil {
		return 0, 0, false
	}
	count.Add(1)
	return log, done, true
}

// close stops the goroutine, waits for it, and closes its connection.
func (c *checkpointer) close() error {
	c.stop()
	<-c.done
	return c.conn.Close()
}
