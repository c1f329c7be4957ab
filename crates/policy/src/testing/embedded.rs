//! The standard library's own policy tests, compiled into the binary so that
//! `rudder policy test --std` runs them anywhere (the files are
//! `crates/policy/scripts/tests/*.json` in the repository).

/// `(name, text)` for each name, the text read from `scripts/tests/NAME.json` at build time.
macro_rules! tests {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../scripts/tests/", $name, ".json")))),*]
    };
}

/// The standard library's test files: (file stem, JSON text).
pub(super) const EMBEDDED_TESTS: &[(&str, &str)] = tests![
    "adapt_divergence_rollback_1",
    "adapt_divergence_rollback_2",
    "adapt_divergence_rollback_3",
    "adapt_overfit_guard_1",
    "adapt_overfit_guard_2",
    "adapt_overfit_guard_3",
    "adapt_plateau_1",
    "adapt_plateau_2",
    "adapt_plateau_3",
    "batch_accumulate_1",
    "batch_accumulate_2",
    "batch_accumulate_3",
    "batch_batch_growth_1",
    "batch_batch_growth_2",
    "batch_rescale_1",
    "lr_constant_1",
    "lr_constant_2",
    "lr_constant_3",
    "lr_cosine_1",
    "lr_cosine_2",
    "lr_cosine_3",
    "lr_cosine_restarts_1",
    "lr_cosine_restarts_2",
    "lr_cosine_restarts_3",
    "lr_cyclic_1",
    "lr_cyclic_2",
    "lr_cyclic_3",
    "lr_exponential_1",
    "lr_exponential_2",
    "lr_exponential_3",
    "lr_inverse_sqrt_1",
    "lr_inverse_sqrt_2",
    "lr_inverse_sqrt_3",
    "lr_linear_1",
    "lr_linear_2",
    "lr_linear_3",
    "lr_multistep_1",
    "lr_multistep_2",
    "lr_multistep_3",
    "lr_onecycle_1",
    "lr_onecycle_2",
    "lr_onecycle_3",
    "lr_polynomial_1",
    "lr_polynomial_2",
    "lr_polynomial_3",
    "lr_step_1",
    "lr_step_2",
    "lr_step_3",
    "lr_warmup_1",
    "lr_warmup_2",
    "lr_warmup_3",
    "lr_wsd_1",
    "lr_wsd_2",
    "lr_wsd_3",
    "stop_early_stop_1",
    "stop_early_stop_2",
    "stop_early_stop_3",
    "stop_early_stop_4",
    "stop_extend_on_drop_1",
    "stop_extend_on_drop_2",
    "stop_extend_on_drop_3",
    "stop_terminate_on_nan_1",
    "sweep_asha_1_jobs4",
    "sweep_asha_1_seq",
    "sweep_asha_2_jobs4",
    "sweep_asha_2_seq",
    "sweep_asha_3_jobs4",
    "sweep_asha_3_seq",
    "sweep_hyperband_1_jobs4",
    "sweep_hyperband_1_seq",
    "sweep_hyperband_2_jobs4",
    "sweep_hyperband_2_seq",
    "sweep_hyperband_3_jobs4",
    "sweep_hyperband_3_seq",
    "sweep_median_1_jobs4",
    "sweep_median_1_seq",
    "sweep_median_2_jobs4",
    "sweep_median_2_seq",
    "sweep_median_3_jobs4",
    "sweep_median_3_seq",
    "sweep_pbt_1",
    "sweep_pbt_2",
    "sweep_pbt_3",
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_test_file_of_the_standard_library_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tests");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::EMBEDDED_TESTS
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "add the new test file to EMBEDDED_TESTS");
    }
}
