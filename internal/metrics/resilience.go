package metrics

import "github.com/prometheus/client_golang/prometheus"

// resilience counts what the service does to ride through outages and to
// bound spend: events held through an event-log outage, their retries, and
// posts refused by the daily token budget.
type resilience struct {
	eventsHeld     prometheus.Gauge
	appendsRetried prometheus.Counter
	budgetRefusals prometheus.Counter
}

func newResilience() resilience {
	return resilience{
		eventsHeld: gauge("events_held",
			"Events running generations hold in memory while the event log is unavailable."),
		appendsRetried: counter("event_appends_retried_total",
			"Retries of held events against an unavailable event log."),
		budgetRefusals: counter("budget_refusals_total",
			"Messages refused because the user's daily token budget was used (budget_exhausted)."),
	}
}

func (r resilience) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.eventsHeld, r.appendsRetried, r.budgetRefusals}
}

// EventsHeld implements chat.Observer.
func (m *Metrics) EventsHeld(delta int) { m.eventsHeld.Add(float64(delta)) }

// AppendRetried implements chat.Observer.
func (m *Metrics) AppendRetried() { m.appendsRetried.Inc() }

// BudgetRefused implements chat.Observer.
func (m *Metrics) BudgetRefused() { m.budgetRefusals.Inc() }
