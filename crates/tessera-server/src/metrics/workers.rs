//! Metrics of the node's background work: every worker of its runner, and the budget of the
//! coordinator's short background tasks. Gathered at scrape time from the runner's typed status
//! (the same [`WorkerInfo`] the API and CLI show).

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tessera_worker::{BudgetStats, WorkerInfo, WorkerState};

/// See the module docs.
pub struct WorkerMetrics {
    state: IntGaugeVec,
    steps: IntCounterVec,
    units: IntCounterVec,
    errors: IntCounterVec,
    panics: IntCounterVec,
    queued: IntGaugeVec,
    rate: GaugeVec,
    events: IntCounterVec,
    budget_tasks: IntGaugeVec,
    budget_bytes: IntGaugeVec,
    budget_refused: IntCounterVec,
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn catch_up(counters: &IntCounterVec, labels: &[&str], total: u64) {
    let counter = counters.with_label_values(labels);
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl WorkerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let worker = &["worker"];
        let metrics = Self {
            state: IntGaugeVec::new(
                Opts::new(
                    "tessera_worker_state",
                    "1 for the state each background worker is in (busy, throttled, idle, paused, backoff, stopping, stopped, done).",
                ),
                &["worker", "state"],
            )?,
            steps: IntCounterVec::new(
                Opts::new("tessera_worker_steps_total", "Steps each worker has run."),
                worker,
            )?,
            units: IntCounterVec::new(
                Opts::new(
                    "tessera_worker_units_total",
                    "Units of work each worker has done, in its own unit (writes committed, hints delivered, datagrams handled, ...).",
                ),
                worker,
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "tessera_worker_errors_total",
                    "Failed steps of each worker (each retried after a backoff).",
                ),
                worker,
            )?,
            panics: IntCounterVec::new(
                Opts::new(
                    "tessera_worker_panics_total",
                    "Steps of each worker that panicked (the worker was restarted).",
                ),
                worker,
            )?,
            queued: IntGaugeVec::new(
                Opts::new("tessera_worker_queued", "Work waiting for each worker, in its unit."),
                worker,
            )?,
            rate: GaugeVec::new(
                Opts::new(
                    "tessera_worker_units_per_second",
                    "Each worker's units of work per second over the last measured second.",
                ),
                worker,
            )?,
            events: IntCounterVec::new(
                Opts::new(
                    "tessera_worker_events_total",
                    "Counters each worker reports of itself (delivered, expired, batches, ...).",
                ),
                &["worker", "event"],
            )?,
            budget_tasks: IntGaugeVec::new(
                Opts::new(
                    "tessera_background_tasks",
                    "Short background tasks running under a budget (replication stragglers, read repairs).",
                ),
                &["budget"],
            )?,
            budget_bytes: IntGaugeVec::new(
                Opts::new(
                    "tessera_background_bytes",
                    "Bytes of cells held by those tasks.",
                ),
                &["budget"],
            )?,
            budget_refused: IntCounterVec::new(
                Opts::new(
                    "tessera_background_refused_total",
                    "Background tasks refused because the budget was full (a straggler kept as a hint, a repair skipped).",
                ),
                &["budget"],
            )?,
        };
        registry.register(Box::new(metrics.state.clone()))?;
        registry.register(Box::new(metrics.steps.clone()))?;
        registry.register(Box::new(metrics.units.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.panics.clone()))?;
        registry.register(Box::new(metrics.queued.clone()))?;
        registry.register(Box::new(metrics.rate.clone()))?;
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.budget_tasks.clone()))?;
        registry.register(Box::new(metrics.budget_bytes.clone()))?;
        registry.register(Box::new(metrics.budget_refused.clone()))?;
        Ok(metrics)
    }

    /// Sets every worker's figures from the runner's list.
    pub fn record(&self, workers: &[WorkerInfo], budgets: &[BudgetStats]) {
        for info in workers {
            let name = info.name.as_str();
            for state in WorkerState::ALL {
                self.state
                    .with_label_values(&[name, state.name()])
                    .set(i64::from(state == info.state));
            }
            catch_up(&self.steps, &[name], info.steps);
            catch_up(&self.units, &[name], info.units);
            catch_up(&self.errors, &[name], info.errors);
            catch_up(&self.panics, &[name], info.panics);
            self.queued
                .with_label_values(&[name])
                .set(gauge(info.status.queued.unwrap_or(0)));
            self.rate.with_label_values(&[name]).set(info.rate);
            for (event, total) in &info.status.counters {
                catch_up(&self.events, &[name, event.as_str()], *total);
            }
        }
        for budget in budgets {
            let name = budget.name.as_str();
            self.budget_tasks
                .with_label_values(&[name])
                .set(gauge(budget.tasks));
            self.budget_bytes
                .with_label_values(&[name])
                .set(gauge(budget.bytes));
            catch_up(&self.budget_refused, &[name], budget.refused);
        }
    }
}
