/*
 * The log budget for guest-caused messages (util/log.h): a burst, then
 * silence counted, then a new window that says how much was left out.
 */
#include <criterion/criterion.h>

#include "log_capture.h"
#include "util/log.h"

Test(log, limit_allows_a_burst_then_counts_what_it_drops)
{
	struct log_limit l = {0};

	for (unsigned i = 0; i < LOG_LIMIT_BURST; i++) {
		cr_assert(log_limit_open(&l));
		cr_assert(log_limit_allow(&l, "test"), "message %u of the burst", i);
	}
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_not(log_limit_open(&l));
		cr_assert_not(log_limit_allow(&l, "test"));
	}
	cr_assert_eq(l.suppressed, 5);
}

Test(log, limit_reopens_after_its_window_and_says_what_was_left_out)
{
	struct log_limit l = {0};
	struct log_capture c;

	for (unsigned i = 0; i < LOG_LIMIT_BURST + 3; i++)
		log_limit_allow(&l, "test");
	l.window_start -= (LOG_LIMIT_WINDOW_S + 1) * 1000000000ULL; /* as if a minute went by */
	cr_assert(log_limit_open(&l));
	log_capture_begin(&c);
	cr_assert(log_limit_allow(&l, "test"));
	cr_assert_eq(log_capture_end(&c, "test: 3 more messages like these were not shown"), 1);
	cr_assert_eq(l.suppressed, 0);
	cr_assert_eq(l.logged, 1);
}
