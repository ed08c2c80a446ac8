//! A slow consumer holds the producer back: the pool pulls input only while fewer than
//! `workers * max-in-flight` batches are out, so memory stays flat however long the input is.

mod common;

use common::*;
use std::cell::Cell;
use std::time::Duration;

#[test]
fn input_is_pulled_no_further_ahead_than_the_in_flight_window() {
    for mode in MODES {
        let schema = int_batch("x", &[]).schema().clone();
        let mut pool = builder("plus_one", &schema, mode, 2).config("udfpool.max-in-flight", "3").build().unwrap();
        let pulled = Cell::new(0usize);
        let input = (0..100).map(|i| {
            pulled.set(pulled.get() + 1);
            int_batch("x", &[Some(i)])
        });
        let mut yielded = 0usize;
        let mut max_ahead = 0usize;
        for result in pool.apply_stream(arrows(input)).map(|r| r.map(native)) {
            result.unwrap();
            yielded += 1;
            max_ahead = max_ahead.max(pulled.get() - yielded);
            if yielded.is_multiple_of(10) {
                std::thread::sleep(Duration::from_millis(5)); // a slow consumer
            }
        }
        assert_eq!(yielded, 100, "{mode}");
        assert!(max_ahead < 2 * 3, "{mode}: {max_ahead} batches were pulled ahead of the consumer");
        assert!(max_ahead > 0, "{mode}: batches are pipelined");
    }
}
