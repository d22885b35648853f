//! A gauge family refreshed as a whole (registrations by state, proxy health, license usage):
//! series are overwritten in place and only those that vanished are removed.

use std::collections::HashSet;

use prometheus::IntGaugeVec;

/// The label sets a gauge family got at the last refresh. A refresh overwrites series in place
/// (resetting first would let a scrape catch the family empty) and removes only those that
/// vanished (an enterprise deleted, a proxy taken out of the configuration).
#[derive(Default)]
pub struct GaugeSeries(HashSet<Vec<String>>);

impl GaugeSeries {
    /// Sets each `(labels, value)` and removes the label sets the last call set and this one
    /// did not.
    pub fn publish<'a>(
        &mut self,
        gauge: &IntGaugeVec,
        values: impl IntoIterator<Item = (Vec<&'a str>, i64)>,
    ) {
        let mut now = HashSet::new();
        for (labels, value) in values {
            gauge.with_label_values(&labels).set(value);
            now.insert(labels.into_iter().map(str::to_owned).collect::<Vec<_>>());
        }
        for gone in self.0.difference(&now) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = gauge.remove_label_values(&labels);
        }
        self.0 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::GaugeSeries;
    use prometheus::{IntGaugeVec, Opts};

    /// A refresh keeps live series (no gap for a scrape) and removes the ones that vanished.
    #[test]
    fn gauge_series_overwrites_and_removes_vanished_label_sets() {
        let Ok(gauge) = IntGaugeVec::new(Opts::new("g", "test"), &["enterprise", "state"]) else {
            panic!("gauge");
        };
        let mut series = GaugeSeries::default();
        series.publish(
            &gauge,
            [
                (vec!["Acme", "registered"], 3),
                (vec!["Gone", "registered"], 1),
            ],
        );
        series.publish(&gauge, [(vec!["Acme", "registered"], 4)]);
        assert_eq!(gauge.with_label_values(&["Acme", "registered"]).get(), 4);
        assert!(
            gauge.remove_label_values(&["Gone", "registered"]).is_err(),
            "the vanished series was removed"
        );
    }
}
