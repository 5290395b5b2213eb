//! Every seed that ever failed during development, pinned with the configuration it failed in,
//! and a line on what it found. Add a failing seed here before fixing what it found.

mod regressions {
    use tillmesh_sim::{SimConfig, run};

    fn holds(config: &SimConfig) {
        if let Err(error) = run(config) {
            panic!("{error}");
        }
    }

    /// Seed 1171, 5 tills + HQ, stormy faults, 3,000 faulty ticks: till E's card payment got a
    /// processor reference of 16 hex digits that held 13 decimal digits in a row passing the
    /// Luhn check, and `tillmesh-core` refused it as a card number (its guard working as
    /// designed). The workload now makes references of letters only (the unit test
    /// `workload::tests::processor_references_never_look_like_card_numbers` pins the cause; this
    /// seed pins the configuration).
    #[test]
    fn seed_1171_processor_reference_looked_like_a_card_number() {
        let mut config = SimConfig::stormy(1171, 5);
        config.faulty_ticks = 3_000;
        holds(&config);
    }
}
