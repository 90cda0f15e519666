// weir-control's VIP announcements through BIRD 2 (control/bird_announcer.h): which VIPs, the
// routes file, and the conversation with a real BIRD daemon (Debian's bird2, started by the test on
// a socket of its own: no network, no routes in the kernel) and with fake ones that misbehave.
#include "control/bird_announcer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/controller.h"

extern char** environ;

namespace weir::control {
namespace {

using net::Ipv4Address;
namespace fs = std::filesystem;

const Ipv4Address kA = Ipv4Address::from_octets(10, 77, 0, 100);
const Ipv4Address kB = Ipv4Address::from_octets(10, 77, 0, 101);
const Ipv4Address kC = Ipv4Address::from_octets(10, 77, 0, 102);

// Listeners: A on pool 0, A again on pool 1, B on pool 1, C with no pool (an echo service).
config::Config three_vips() {
  config::Config config;
  auto listener = [](Ipv4Address address, std::optional<size_t> pool) {
    config::Listener l;
    l.address = address;
    l.pool = pool;
    return l;
  };
  config.listeners = {listener(kB, 1), listener(kA, 0), listener(kA, 1), listener(kC, {})};
  return config;
}

TEST(VipsToAnnounce, EachVipWithABackendUpBehindOneOfItsListenersOnceAndInOrder) {
  const config::Config config = three_vips();
  struct Case {
    AnnounceState state;
    std::set<size_t> pools_up;
    std::vector<Ipv4Address> expected;
  };
  const AnnounceState serving{true, false, false};
  const Case cases[] = {
      {serving, {0, 1}, {kA, kB}},
      {serving, {1}, {kA, kB}},  // A still has pool 1 behind it
      {serving, {0}, {kA}},
      {serving, {}, {}},
      {{false, false, false}, {0, 1}, {}},  // the dataplane is not answering
      {{true, true, false}, {0, 1}, {}},    // weirctl drain-box
      {{true, false, true}, {0, 1}, {}},    // weir-control is stopping
  };
  for (const Case& c : cases) {
    const auto vips =
        vips_to_announce(config, c.state, [&](size_t pool) { return c.pools_up.count(pool) > 0; });
    EXPECT_EQ(vips, c.expected) << "dataplane_up " << c.state.dataplane_up << " drained "
                                << c.state.box_drained << " stopping " << c.state.stopping
                                << " pools up " << c.pools_up.size();
  }
}

TEST(VipsToAnnounce, APoolIsUpWhileOneBackendIsUpByHealthOrByTheOperator) {
  const std::string text =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
      "  ports:\n"
      "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
      "listeners:\n"
      "  - { name: web, address: 10.0.0.100, port: 80, protocol: tcp, pool: app }\n"
      "pools:\n"
      "  - name: app\n"
      "    backends:\n"
      "      - { name: b1, address: 10.0.1.1, port: 80 }\n"
      "      - { name: b2, address: 10.0.1.2, port: 80 }\n";
  const config::LoadResult loaded = config::load_string(text, "t.yaml");
  ASSERT_TRUE(loaded.ok());
  Controller controller(loaded.config);
  EXPECT_TRUE(controller.pool_has_backend_up(0));
  controller.health("app", "b1", false);
  EXPECT_TRUE(controller.pool_has_backend_up(0)) << "b2 is still up";
  controller.health("app", "b2", false);
  EXPECT_FALSE(controller.pool_has_backend_up(0));
  ASSERT_EQ(controller.set("app", "b2", std::string("up"), std::nullopt), "");
  EXPECT_TRUE(controller.pool_has_backend_up(0)) << "the operator's override counts";
  ASSERT_EQ(controller.set("app", "b2", std::string("draining"), std::nullopt), "");
  EXPECT_FALSE(controller.pool_has_backend_up(0)) << "draining takes no new flows";
  EXPECT_FALSE(controller.pool_has_backend_up(7)) << "no such pool";
}

TEST(BirdRoutes, AStaticProtocolWithOneBlackholeRoutePerVip) {
  const std::string text = bird_routes({kA, kB});
  EXPECT_NE(text.find("protocol static weir_vips {\n  ipv4;\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route 10.77.0.100/32 blackhole;\n  route 10.77.0.101/32 blackhole;\n}\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(bird_routes({}).find("route "), std::string::npos) << "no VIP: no route";
}

// A scratch directory with BIRD's configuration, which includes the routes file.
class BirdDirectory {
 public:
  BirdDirectory() {
    char pattern[] = "/tmp/weir-bird-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~BirdDirectory() { fs::remove_all(path_); }
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  void write_main_config(const std::string& extra = "") const {
    std::ofstream(path("bird.conf")) << "router id 10.77.1.2;\n"
                                     << "protocol device {}\n"
                                     << "include \"" << path("routes.conf") << "\";\n"
                                     << extra;
  }

 private:
  fs::path path_;
};

// BIRD in the foreground on the directory's socket; stopped with the test.
class BirdDaemon {
 public:
  explicit BirdDaemon(const BirdDirectory& dir) : socket_(dir.path("bird.ctl")) {
    dir.write_main_config();
    std::ofstream(dir.path("routes.conf")) << bird_routes({});
    const std::string config = dir.path("bird.conf");
    std::vector<std::string> args{"bird", "-f", "-c", config, "-s", socket_};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "bird", nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
  }
  ~BirdDaemon() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Whether BIRD answers on its socket within 10 s (polled; it creates the socket once it runs).
  bool ready() const {
    for (int i = 0; i < 200 && pid_ > 0; ++i) {
      if (bird_configure(socket_, 1000).empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // The prefixes of `show route protocol weir_vips`, as birdc prints them.
  std::set<std::string> routes() const {
    std::set<std::string> out;
    FILE* p = popen(("birdc -s " + socket_ + " show route protocol weir_vips").c_str(), "r");
    if (p == nullptr) return out;
    char line[512];
    while (std::fgets(line, sizeof line, p) != nullptr) {
      const std::string text(line);
      if (text.find("/32") != std::string::npos) out.insert(text.substr(0, text.find(' ')));
    }
    pclose(p);
    return out;
  }
  const std::string& socket() const { return socket_; }

 private:
  std::string socket_;
  pid_t pid_ = -1;
};

TEST(BirdAnnouncer, RealBirdGainsAndLosesTheRoutesWeirControlDecidesOn) {
  BirdDirectory dir;
  BirdDaemon bird(dir);
  ASSERT_TRUE(bird.ready()) << "bird (Debian's bird2) did not start on " << bird.socket();
  BirdAnnouncer announcer({bird.socket(), dir.path("routes.conf")});
  ASSERT_EQ(announcer.announce({kA, kB}), "");
  EXPECT_EQ(bird.routes(), (std::set<std::string>{"10.77.0.100/32", "10.77.0.101/32"}));
  ASSERT_EQ(announcer.announce({kB}), "");
  EXPECT_EQ(bird.routes(), std::set<std::string>{"10.77.0.101/32"});
  ASSERT_EQ(announcer.announce({kB}), "") << "nothing changed: nothing asked";
  ASSERT_EQ(announcer.announce({}), "");
  EXPECT_EQ(bird.routes(), std::set<std::string>{});
  EXPECT_EQ(announcer.reconfigurations(), 3u);
  EXPECT_EQ(announcer.failures(), 0u);
}

TEST(BirdAnnouncer, ARefusedConfigurationIsReportedAndTriedAgainUntilBirdTakesIt) {
  BirdDirectory dir;
  BirdDaemon bird(dir);
  ASSERT_TRUE(bird.ready());
  BirdAnnouncer announcer({bird.socket(), dir.path("routes.conf")});
  ASSERT_EQ(announcer.announce({kA}), "");
  // An operator's mistake in BIRD's own file: BIRD keeps its running configuration.
  dir.write_main_config("this is not bird syntax;\n");
  const std::string error = announcer.announce({kA, kC});
  EXPECT_NE(error.find("BIRD refused the configuration"), std::string::npos) << error;
  EXPECT_NE(error.find("syntax error"), std::string::npos) << error;
  EXPECT_FALSE(announcer.in_sync());
  EXPECT_EQ(bird.routes(), std::set<std::string>{"10.77.0.100/32"}) << "BIRD kept the old routes";
  dir.write_main_config();
  ASSERT_EQ(announcer.announce({kA, kC}), "") << "the same set, tried again";
  EXPECT_EQ(bird.routes(), (std::set<std::string>{"10.77.0.100/32", "10.77.0.102/32"}));
  EXPECT_EQ(announcer.failures(), 1u);
}

// A Unix socket server that accepts one client and then does `behave(fd)`.
class FakeBird {
 public:
  template <typename Behave>
  FakeBird(const std::string& path, Behave behave) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
             listen(fd_, 1) == 0;
    thread_ = std::thread([this, behave] {
      const int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      behave(client);
      // Hold the connection until the test is done with it.
      char byte;
      while (read(client, &byte, 1) > 0) {
      }
      close(client);
    });
  }
  ~FakeBird() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }
  bool bound() const { return bound_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::thread thread_;
};

TEST(BirdConfigure, ABirdThatNeverAnswersCostsTheTimeoutAndAnError) {
  BirdDirectory dir;
  const std::string path = dir.path("silent.ctl");
  std::string error;
  {
    FakeBird silent(path, [](int) {});
    ASSERT_TRUE(silent.bound());
    error = bird_configure(path, 200);
  }  // the client closed: the fake's thread ends
  EXPECT_EQ(error, "BIRD did not answer in time");
}

TEST(BirdConfigure, SomethingElseOnTheSocketIsNotTakenForBird) {
  BirdDirectory dir;
  const std::string path = dir.path("http.ctl");
  std::string error;
  {
    FakeBird http(path, [](int fd) {
      const char reply[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
      [[maybe_unused]] ssize_t n = write(fd, reply, sizeof reply - 1);
      shutdown(fd, SHUT_WR);
    });
    ASSERT_TRUE(http.bound());
    error = bird_configure(path, 2000);
  }
  EXPECT_EQ(error.find("not a BIRD reply: HTTP/1.1 400"), 0u) << error;
}

TEST(BirdConfigure, NoBirdNamesTheSocket) {
  const std::string error = bird_configure("/nonexistent/weir/bird.ctl", 200);
  EXPECT_NE(error.find("/nonexistent/weir/bird.ctl"), std::string::npos) << error;
}

}  // namespace
}  // namespace weir::control
