// SPDX-License-Identifier: Apache-2.0
// Burst loss for the integration test bed: a tc direct-action program (clsact ingress or egress)
// that drops runs of consecutive frames: every `period` matching frames a run begins, and the next
// `run` frames are dropped, or as many as come within `max_run_us` of its start. This is the loss
// a congested switch or an overflowing ring makes (many consecutive segments of many connections
// at once), which independent per-frame loss (drop.bpf.c) does not. The time bound keeps a run a
// burst: counted in frames alone, a run that starts when little is flowing would swallow every
// retransmission for as long as the senders back off, which no switch does.
//
// The frame count is per CPU (a per-CPU array, so no atomic is needed): on a veth a direction's
// frames are mostly handled on the sending process's CPU, so a run is consecutive frames of that
// CPU's share of the traffic.
//
// Inert until configured: while burst_config[0].run is 0 every frame passes.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with netbed.py (struct.pack("<III", ...)): little-endian host order.
struct burst_config {
  __u32 run;        // frames dropped in a row; 0 = pass everything
  __u32 period;     // one run in every `period` matching frames (period > run)
  __u32 ethertype;  // host order; 0 = every frame matches, else only this EtherType
  __u32 max_run_us;  // a run ends this long after it began, however few frames it took
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct burst_config);
} burst_config SEC(".maps");

// Per CPU: [0] matching frames seen, [1] frames dropped, [2] when the current run began (ns),
// [3] frames the current run may still drop.
enum { SEEN = 0, DROPPED = 1, RUN_START = 2, RUN_LEFT = 3, SLOTS = 4 };
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} burst_counters SEC(".maps");

SEC("tc")
int weir_burst_drop(struct __sk_buff* skb) {
  const __u32 config_key = 0;
  const struct burst_config* config = bpf_map_lookup_elem(&burst_config, &config_key);
  if (!config || config->run == 0 || config->period <= config->run) return TC_ACT_OK;
  if (config->ethertype != 0 && bpf_ntohs((__u16)skb->protocol) != config->ethertype)
    return TC_ACT_OK;
  const __u32 keys[SLOTS] = {SEEN, DROPPED, RUN_START, RUN_LEFT};
  __u64* seen = bpf_map_lookup_elem(&burst_counters, &keys[SEEN]);
  __u64* dropped = bpf_map_lookup_elem(&burst_counters, &keys[DROPPED]);
  __u64* run_start = bpf_map_lookup_elem(&burst_counters, &keys[RUN_START]);
  __u64* run_left = bpf_map_lookup_elem(&burst_counters, &keys[RUN_LEFT]);
  if (!seen || !dropped || !run_start || !run_left) return TC_ACT_OK;
  const __u64 now = bpf_ktime_get_ns();
  if ((*seen)++ % config->period == 0) {
    *run_start = now;
    *run_left = config->run;
  }
  if (*run_left > 0 && now - *run_start < (__u64)config->max_run_us * 1000) {
    --*run_left;
    ++*dropped;
    return TC_ACT_SHOT;
  }
  *run_left = 0;
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Apache-2.0";
