// SPDX-License-Identifier: Apache-2.0
// A "bad switch" for the integration test bed: a tc direct-action program that corrupts TCP
// payload undetectably. In every Nth TCP segment carrying payload to the configured destination
// port it flips bit 0 of the first payload byte and patches the TCP checksum to match (RFC 1624
// incremental update, done by bpf_l4_csum_replace), so the receiver's TCP accepts the damage.
// This is the failure that end-to-end integrity checks exist for: TCP's checksum cannot catch a
// device that corrupts a frame and recomputes the checksum.
//
// Inert until configured: while bad_switch_cfg[0].every_nth is 0 every frame passes unchanged.
// With offloads on, a segment may still be CHECKSUM_PARTIAL at the hook: then the kernel fills in
// the checksum later over the modified payload, and bpf_l4_csum_replace correctly leaves it alone.
//
// Build: clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c bad_switch.bpf.c
// Attach: tc qdisc add dev IF clsact; tc filter add dev IF ingress bpf direct-action obj
// bad_switch.bpf.o sec tc
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Layout shared with netbed.py (struct.pack("<HBBI", ...)): little-endian host order.
struct bad_switch_config {
  __u16 port;           // host order; the destination port, or the source port with match_source
  __u8 patch_checksum;  // 1 = keep the TCP checksum valid (the bad switch); 0 = leave it stale,
                        // so the receiver must drop the segment (the control experiment)
  __u8 match_source;    // 1 = match segments from `port` (a server's answers), 0 = to it
  __u32 every_nth;      // flip one bit in every Nth matching segment; 0 = inert
};

// Counter slots (u64 each, read with bpftool map dump).
enum bad_switch_counter {
  BSW_MATCHED = 0,  // TCP segments with >= 2 payload bytes to (or from) the port
  BSW_FLIPPED = 1,  // of those, the ones whose bit was flipped
  BSW_COUNTER_SLOTS = 2
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bad_switch_config);
} bad_switch_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, BSW_COUNTER_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} bad_switch_cnt SEC(".maps");

// Returns the counter's value before the increment.
static __always_inline __u64 count(__u32 slot) {
  __u64* value = bpf_map_lookup_elem(&bad_switch_cnt, &slot);
  if (!value) return 0;
  return __sync_fetch_and_add(value, 1);
}

SEC("tc")
int weir_bad_switch(struct __sk_buff* skb) {
  const __u32 key = 0;
  const struct bad_switch_config* config = bpf_map_lookup_elem(&bad_switch_cfg, &key);
  if (!config || config->every_nth == 0) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;

  // bpf_skb_load_bytes works whether or not the headers sit in the linear part of the skb.
  struct iphdr ip;
  if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0) return TC_ACT_OK;
  if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP) return TC_ACT_OK;
  // A fragment's payload is not at the TCP header's offset (RFC 791 3.2): leave fragments alone.
  if (ip.frag_off & bpf_htons(0x3FFF)) return TC_ACT_OK;
  const __u32 ip_header_bytes = (__u32)ip.ihl * 4;

  struct tcphdr tcp;
  const __u32 tcp_offset = ETH_HLEN + ip_header_bytes;
  if (bpf_skb_load_bytes(skb, tcp_offset, &tcp, sizeof(tcp)) < 0) return TC_ACT_OK;
  const __u16 matched_port = config->match_source ? tcp.source : tcp.dest;
  if (matched_port != bpf_htons(config->port) || tcp.doff < 5) return TC_ACT_OK;
  const __u32 tcp_header_bytes = (__u32)tcp.doff * 4;
  const __u32 ip_total = bpf_ntohs(ip.tot_len);
  if (ip_total < ip_header_bytes + tcp_header_bytes + 2) return TC_ACT_OK;

  if ((count(BSW_MATCHED) + 1) % config->every_nth != 0) return TC_ACT_OK;

  // The payload starts an even number of bytes after the TCP header's start (the header is a
  // multiple of 4), so its first two bytes are one 16-bit word of the ones'-complement sum the
  // checksum covers (RFC 793 3.1): replacing that word is an exact incremental update.
  const __u32 payload_offset = tcp_offset + tcp_header_bytes;
  __u8 word[2];
  if (bpf_skb_load_bytes(skb, payload_offset, word, sizeof(word)) < 0) return TC_ACT_OK;
  __u16 old_word;
  __builtin_memcpy(&old_word, word, sizeof(old_word));
  word[0] ^= 0x01;
  __u16 new_word;
  __builtin_memcpy(&new_word, word, sizeof(new_word));

  if (bpf_skb_store_bytes(skb, payload_offset, word, sizeof(word), 0) < 0) return TC_ACT_OK;
  if (config->patch_checksum) {
    const __u32 checksum_offset = tcp_offset + __builtin_offsetof(struct tcphdr, check);
    if (bpf_l4_csum_replace(skb, checksum_offset, old_word, new_word, sizeof(new_word)) < 0)
      return TC_ACT_SHOT;  // a corrupt segment that would not even be consistently corrupt
  }
  count(BSW_FLIPPED);
  return TC_ACT_OK;
}

// No GPL-only helper is used, so the kernel needs no GPL-compatible licence string.
char LICENSE[] SEC("license") = "Apache-2.0";
