// SPDX-License-Identifier: Apache-2.0
// A data path broken for one source only, for the passive health test (tests/integration/
// test_operate.py): a tc direct-action program that drops TCP SYNs (without ACK) from one IPv4
// source address, and nothing else. Put on the bridge port toward a backend with the dataplane's
// port address as the source, it makes that backend unreachable from the dataplane while the
// health checks, which come from weir-control's management address, still reach it.
//
// Inert until configured: while drop_syn_config[0].source is 0 every frame passes.
//
// Build: clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c drop_syn.bpf.c
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with test_operate.py (struct.pack("<4sI", ...)).
struct drop_syn_config {
  __u32 source;  // network order, as in the IPv4 header; 0 = pass everything
  __u32 unused;
};

// Counter slots (u64 each). Map names are cut at 15 characters by the kernel.
enum drop_syn_counter { DS_SYNS_DROPPED = 0, DS_SYNS_PASSED = 1, DS_COUNTER_SLOTS = 2 };

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct drop_syn_config);
} drop_syn_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, DS_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} drop_syn_counts SEC(".maps");

static __always_inline void count(__u32 slot) {
  __u64* value = bpf_map_lookup_elem(&drop_syn_counts, &slot);
  if (value) __sync_fetch_and_add(value, 1);
}

SEC("tc")
int weir_drop_syn(struct __sk_buff* skb) {
  const __u32 key = 0;
  const struct drop_syn_config* config = bpf_map_lookup_elem(&drop_syn_config, &key);
  if (!config || config->source == 0) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  struct iphdr ip;
  if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0) return TC_ACT_OK;
  if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP) return TC_ACT_OK;
  if (ip.frag_off & bpf_htons(0x1FFF)) return TC_ACT_OK;  // a later fragment has no TCP header
  struct tcphdr tcp;
  if (bpf_skb_load_bytes(skb, ETH_HLEN + (__u32)ip.ihl * 4, &tcp, sizeof(tcp)) < 0)
    return TC_ACT_OK;
  if (!tcp.syn || tcp.ack) return TC_ACT_OK;
  if (ip.saddr != config->source) {
    count(DS_SYNS_PASSED);
    return TC_ACT_OK;
  }
  count(DS_SYNS_DROPPED);
  return TC_ACT_SHOT;
}

// No GPL-only helper is used, so the kernel needs no GPL-compatible licence string.
char LICENSE[] SEC("license") = "Apache-2.0";
