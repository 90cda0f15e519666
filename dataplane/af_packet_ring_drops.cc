#include "dataplane/af_packet_ring_drops.h"

#include <dirent.h>
#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>

namespace weir::dataplane {

AfPacketRingDrops AfPacketRingDrops::for_interface(uint32_t if_index) {
  AfPacketRingDrops found;
  if (if_index == 0) return found;
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return found;
  const int listing = dirfd(fds);
  while (const dirent* entry = readdir(fds)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == listing) continue;
    int domain = 0;
    socklen_t length = sizeof(domain);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0 ||
        domain != AF_PACKET) {
      continue;  // not a socket, or not a packet socket
    }
    sockaddr_ll address{};
    length = sizeof(address);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        static_cast<uint32_t>(address.sll_ifindex) != if_index) {
      continue;
    }
    found.sockets_.push_back(static_cast<int>(fd));
  }
  closedir(fds);
  return found;
}

uint64_t AfPacketRingDrops::drops() {
  for (const int fd : sockets_) {
    // tpacket_stats is what a TPACKET_V2 ring (the driver's) reports; V3 appends a field.
    tpacket_stats_v3 stats{};
    socklen_t length = sizeof(stats);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) == 0)
      total_ += stats.tp_drops;
  }
  return total_;
}

}  // namespace weir::dataplane
