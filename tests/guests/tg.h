/*
 * The test-guest runner of guest_test.c, for other runners linked into the
 * same executable (hostile_test.c): create a VM with a guest loaded and its
 * control ports claimed, run it under a watchdog, check what it reported.
 */
#ifndef TABIQUE_TESTS_TG_H
#define TABIQUE_TESTS_TG_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

struct tg;

/* A VM with memory bytes of RAM and ncpus vCPUs, guest <name>.bin loaded, ready to run. */
struct tg *tg_setup(const char *guest, uint64_t memory, unsigned ncpus);
/* Runs the VM until it stops, or the watchdog stops it after ms. */
enum vm_action tg_run(struct tg *t, unsigned ms);
void tg_teardown(struct tg *t);
struct vm *tg_vm(struct tg *t);
/* Fails the test if the guest took an exception. */
void tg_assert_no_fault(const struct tg *t);
/* Whether the guest reported a result, and which. */
bool tg_result(const struct tg *t, uint32_t *result);

#endif
