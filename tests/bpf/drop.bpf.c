// SPDX-License-Identifier: Apache-2.0
// A lossy link for the integration test bed: a tc direct-action program (clsact ingress or egress,
// cls_bpf direct-action) that drops each matching frame independently with a configured
// probability. This kernel has no netem, so loss is made here.
//
// Inert until configured: while drop_config[0].drop_per_million is 0 every frame passes, so a
// test attaches the program, writes the configuration (tests/integration/netbed.py,
// Testbed.bpf_map_update), then starts its traffic.
//
// Build: clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c drop.bpf.c
// Attach: tc qdisc add dev IF clsact; tc filter add dev IF egress bpf direct-action obj
// drop.bpf.o sec tc
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with netbed.py (struct.pack("<II", ...)): little-endian host order.
struct drop_config {
  __u32 drop_per_million;  // 0 = pass everything; 1000000 = drop every matching frame
  __u32 ethertype;         // host order; 0 = every frame matches, else only this EtherType
};

// Counter slots (u64 each, read with bpftool map dump).
enum drop_counter { DROP_MATCHED = 0, DROP_DROPPED = 1, DROP_COUNTER_SLOTS = 2 };

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct drop_config);
} drop_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, DROP_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} drop_counters SEC(".maps");

static __always_inline void count(__u32 slot) {
  __u64* value = bpf_map_lookup_elem(&drop_counters, &slot);
  if (value) __sync_fetch_and_add(value, 1);
}

SEC("tc")
int weir_drop(struct __sk_buff* skb) {
  const __u32 key = 0;
  const struct drop_config* config = bpf_map_lookup_elem(&drop_config, &key);
  if (!config || config->drop_per_million == 0) return TC_ACT_OK;
  // skb->protocol is the frame's EtherType in network order (after any VLAN tag the kernel
  // stripped), so ARP can be spared and neighbour resolution stays deterministic.
  if (config->ethertype != 0 && bpf_ntohs((__u16)skb->protocol) != config->ethertype)
    return TC_ACT_OK;
  count(DROP_MATCHED);
  // Independent Bernoulli trials: bpf_get_prandom_u32 is uniform on [0, 2^32); the modulo bias for
  // a 10^6 range is below 2.4e-4 relative, far under what any loss test can resolve.
  if (bpf_get_prandom_u32() % 1000000u < config->drop_per_million) {
    count(DROP_DROPPED);
    return TC_ACT_SHOT;
  }
  return TC_ACT_OK;
}

// No GPL-only helper is used, so the kernel needs no GPL-compatible licence string.
char LICENSE[] SEC("license") = "Apache-2.0";
