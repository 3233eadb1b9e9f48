// fusioncim native harness: drives a host program (fusioncim/sim/program.py, format 1) into the
// Verilated engine with no Python in the cycle loop, and writes what the engine did.
//
// It does what tb/engine_tests.py does, cycle for cycle: per workload a reset (rst high for
// 3 clocks), then per segment wait until the engine is idle with every expected row out,
// send the kv_wr beats, then the cmd and q_in beats (concurrently), each beat after its
// gap of idle cycles; o_out is taken with ready held low for each row's gap after the
// previous transfer. It compares nothing: it writes every output word, the counters, the
// error flags and the cycles each workload took, and the parent (fusioncim/sim/native.py)
// compares them with golden element by element and counter by counter.
//
//   engine_native PROGRAM BUDGETS OUT
//
// BUDGETS: one line per workload, the cycles it may take (tb/engine_tests.py cycle_budget).
// OUT: "workload I CYCLES ERR", "counter NAME VALUE" and "o_out HEX" lines per workload.
// Exit status 0; 2 for an unreadable or malformed program; 3 when a workload runs past
// its budget (the message names what each stream was doing).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "Vengine.h"
#include "verilated.h"
#include "fusioncim_counters.h"   // #define FUSIONCIM_COUNTERS(X) X(cycles) X(...) ...
// The program format's records and the stream ports (FUSIONCIM_KV, _CMD, _Q, _O; FUSIONCIM_PORT(stream,
// field) is Verilator's name of Amaranth's port stream__field), generated from fusioncim/sim/program.py.
#include "fusioncim_program.h"
typedef std::vector<uint32_t> Word;   // least significant 32 bits first

struct Beat { uint64_t gap; Word word; };
struct Segment { std::vector<Beat> kv_wr, cmd, q_in, o_out; };
struct Workload { std::vector<Segment> segments; };

static Word parse_hex(const std::string& hex) {
    Word w;
    for (size_t end = hex.size(); end > 0;) {
        size_t start = end >= 8 ? end - 8 : 0;
        w.push_back((uint32_t)std::stoul(hex.substr(start, end - start), nullptr, 16));
        end = start;
    }
    return w;
}

static std::string to_hex(const Word& w) {
    std::string s;
    char buf[16];
    bool lead = true;
    for (size_t i = w.size(); i-- > 0;) {
        if (lead) {
            if (w[i] == 0 && i > 0) continue;
            std::snprintf(buf, sizeof buf, "%x", w[i]);
            lead = false;
        } else {
            std::snprintf(buf, sizeof buf, "%08x", w[i]);
        }
        s += buf;
    }
    return s.empty() ? "0" : s;
}

// Ports of up to 64 bits are integers in Verilator's model, wider ones VlWide arrays.
template <typename T> static void put(T& port, const Word& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (w.size() > 1) v |= (uint64_t)w[1] << 32;
    port = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& port, const Word& w) {
    for (std::size_t i = 0; i < N; i++) port[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static Word get(const T& port) {
    uint64_t v = (uint64_t)port;
    return Word{(uint32_t)v, (uint32_t)(v >> 32)};
}
template <std::size_t N> static Word get(const VlWide<N>& port) {
    Word w(N);
    for (std::size_t i = 0; i < N; i++) w[i] = port[i];
    return w;
}

static std::vector<Workload> read_program(const char* path) {
    std::ifstream f(path);
    if (!f) { std::fprintf(stderr, "cannot read %s\n", path); std::exit(2); }
    std::vector<Workload> out;
    std::string line, kind;
    std::getline(f, line);
    if (line.rfind(FUSIONCIM_PROGRAM_FIRST_LINE, 0) != 0) {
        std::fprintf(stderr, "%s: not a host program (%s)\n", path, FUSIONCIM_PROGRAM_FIRST_LINE);
        std::exit(2);
    }
    long no = 1;
    while (std::getline(f, line)) {
        no++;
        std::istringstream in(line);
        in >> kind;
        if (kind == FUSIONCIM_RECORD_CONFIG || line.empty()) continue;
        if (kind == FUSIONCIM_RECORD_WORKLOAD) { out.emplace_back(); continue; }
        if (out.empty()) { std::fprintf(stderr, "%s:%ld: %s before a workload\n", path, no, kind.c_str()); std::exit(2); }
        if (kind == FUSIONCIM_RECORD_SEGMENT) { out.back().segments.emplace_back(); continue; }
        Segment* seg = out.back().segments.empty() ? nullptr : &out.back().segments.back();
        uint64_t gap; std::string hex;
        if (!seg || !(in >> gap >> hex)) { std::fprintf(stderr, "%s:%ld: bad line\n", path, no); std::exit(2); }
        Beat b{gap, parse_hex(hex)};
        if (kind == FUSIONCIM_KV_RECORD) seg->kv_wr.push_back(b);
        else if (kind == FUSIONCIM_CMD_RECORD) seg->cmd.push_back(b);
        else if (kind == FUSIONCIM_Q_RECORD) seg->q_in.push_back(b);
        else if (kind == FUSIONCIM_O_RECORD) seg->o_out.push_back(b);
        else { std::fprintf(stderr, "%s:%ld: unknown record %s\n", path, no, kind.c_str()); std::exit(2); }
    }
    return out;
}

// One source stream: beats offered in order, each after its gap.
struct Source {
    const std::vector<Beat>* beats = nullptr;
    size_t next = 0;
    uint64_t wait = 0;
    void start(const std::vector<Beat>& b) { beats = &b; next = 0; wait = b.empty() ? 0 : b[0].gap; }
    bool done() const { return !beats || next >= beats->size(); }
    bool offering() const { return !done() && wait == 0; }
    const Word& word() const { return (*beats)[next].word; }
    void end_of_cycle(bool taken) {
        if (done()) return;
        if (taken) { next++; wait = done() ? 0 : (*beats)[next].gap; }
        else if (wait) wait--;
    }
};

struct Harness {
    Vengine* top;
    uint64_t cycle = 0;
    Source kv, cmd, q;
    std::vector<uint64_t> gaps;          // o_out: cycles ready stays low before each row
    size_t received = 0, expected = 0;
    uint64_t since = 0;
    bool idle_seen = false;              // the engine's idle output, sampled this cycle
    std::vector<Word> observed;

    explicit Harness(Vengine* t) : top(t) {}

    // One clock: inputs for this cycle, settle, sample the handshakes, rising edge.
    void step() {
        top->FUSIONCIM_PORT(FUSIONCIM_KV, valid) = kv.offering();
        if (kv.offering()) put(top->FUSIONCIM_PORT(FUSIONCIM_KV, payload), kv.word());
        top->FUSIONCIM_PORT(FUSIONCIM_CMD, valid) = cmd.offering();
        if (cmd.offering()) put(top->FUSIONCIM_PORT(FUSIONCIM_CMD, payload), cmd.word());
        top->FUSIONCIM_PORT(FUSIONCIM_Q, valid) = q.offering();
        if (q.offering()) put(top->FUSIONCIM_PORT(FUSIONCIM_Q, payload), q.word());
        uint64_t gap = received < gaps.size() ? gaps[received] : 0;
        bool ready = since >= gap;
        since++;
        top->FUSIONCIM_PORT(FUSIONCIM_O, ready) = ready;
        top->clk = 0;
        top->eval();
        bool kv_taken = kv.offering() && top->FUSIONCIM_PORT(FUSIONCIM_KV, ready);
        bool cmd_taken = cmd.offering() && top->FUSIONCIM_PORT(FUSIONCIM_CMD, ready);
        bool q_taken = q.offering() && top->FUSIONCIM_PORT(FUSIONCIM_Q, ready);
        if (ready && top->FUSIONCIM_PORT(FUSIONCIM_O, valid)) {
            observed.push_back(get(top->FUSIONCIM_PORT(FUSIONCIM_O, payload)));
            received++;
            since = 0;
        }
        idle_seen = top->idle;
        top->clk = 1;
        top->eval();
        cycle++;
        kv.end_of_cycle(kv_taken);
        cmd.end_of_cycle(cmd_taken);
        q.end_of_cycle(q_taken);
    }
};

int main(int argc, char** argv) {
    if (argc != 4) { std::fprintf(stderr, "usage: %s PROGRAM BUDGETS OUT\n", argv[0]); return 2; }
    Verilated::commandArgs(1, argv);
    std::vector<Workload> workloads = read_program(argv[1]);
    std::vector<uint64_t> budgets;
    {
        std::ifstream b(argv[2]);
        uint64_t v;
        while (b >> v) budgets.push_back(v);
    }
    if (budgets.size() != workloads.size()) { std::fprintf(stderr, "%s: one budget per workload\n", argv[2]); return 2; }
    std::ofstream out(argv[3]);
    Vengine* top = new Vengine;
    top->err_clear = 0;
    top->abort_tile = 0;
    for (size_t wi = 0; wi < workloads.size(); wi++) {
        Harness h(top);
        Workload& w = workloads[wi];
        for (auto& seg : w.segments)
            for (auto& b : seg.o_out) h.gaps.push_back(b.gap);
        top->rst = 1;
        for (int i = 0; i < 3; i++) h.step();
        top->rst = 0;
        h.step();
        uint64_t start = h.cycle;
        auto stalled = [&](const char* what) {
            std::fprintf(stderr, "workload %zu: stalled after %llu cycles (%s): kv_wr beat %zu, cmd beat %zu, "
                         "q_in beat %zu, o_out %zu of %zu rows, idle %d\n", wi, (unsigned long long)(h.cycle - start),
                         what, h.kv.next, h.cmd.next, h.q.next, h.received, h.expected, (int)top->idle);
            std::exit(3);
        };
        auto wait_idle = [&]() {
            for (;;) {
                if (h.cycle - start > budgets[wi]) stalled("waiting for idle");
                h.step();
                if (h.idle_seen && h.received == h.expected) return;
            }
        };
        for (auto& seg : w.segments) {
            wait_idle();
            h.kv.start(seg.kv_wr);
            while (!h.kv.done()) {
                if (h.cycle - start > budgets[wi]) stalled("loading the KV buffer");
                h.step();
            }
            h.expected += seg.o_out.size();
            h.cmd.start(seg.cmd);
            h.q.start(seg.q_in);
            while (!h.cmd.done() || !h.q.done()) {
                if (h.cycle - start > budgets[wi]) stalled("sending commands");
                h.step();
            }
            wait_idle();
        }
        top->clk = 0;
        top->eval();
        out << "workload " << wi << " " << (h.cycle - start) << " " << (unsigned)top->err << "\n";
#define X(name) out << "counter " #name " " << (unsigned long long)top->name << "\n";
        FUSIONCIM_COUNTERS(X)
#undef X
        for (auto& w : h.observed) out << FUSIONCIM_O_RECORD " " << to_hex(w) << "\n";
        h.step();
        h.kv.beats = h.cmd.beats = h.q.beats = nullptr;
    }
    out.close();
    top->final();
    delete top;
    return 0;
}
