// keel CUDA emulator: a stand-in libnvrtc.so.13. "Compiling" a program runs g++ on the
// CUDA source with keel_emu_device.h force-included and produces a shared object; the
// "PTX" handed back names that object, and the stand-in driver (driver.cpp) loads it.
//
// Objects are cached by a hash of (source, device header) in $KEEL_CUDA_EMU_CACHE
// (default: the `cache` folder next to this library). $CXX picks the compiler (g++).
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

enum Result {
    NVRTC_SUCCESS = 0,
    NVRTC_ERROR_OUT_OF_MEMORY = 1,
    NVRTC_ERROR_PROGRAM_CREATION_FAILURE = 2,
    NVRTC_ERROR_INVALID_INPUT = 3,
    NVRTC_ERROR_INVALID_PROGRAM = 4,
    NVRTC_ERROR_INVALID_OPTION = 5,
    NVRTC_ERROR_COMPILATION = 6,
    NVRTC_ERROR_INTERNAL_ERROR = 11,
};

struct Program {
    std::string source, name, log, ptx;
};

std::string library_dir() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&library_dir), &info) && info.dli_fname) {
        std::string p = info.dli_fname;
        const size_t slash = p.rfind('/');
        if (slash != std::string::npos) return p.substr(0, slash);
    }
    return ".";
}

uint64_t fnv1a(const std::string& s, uint64_t h = 0xcbf29ce484222325ull) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::stringstream ss;
    ss << f.rdbuf();
    out = ss.str();
    return true;
}

bool write_file(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary);
    f << data;
    return static_cast<bool>(f);
}

std::string quote(const std::string& s) {
    std::string r = "'";
    for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return r + "'";
}

// Runs a shell command, appending its stdout+stderr to `log`; returns the exit status.
int run(const std::string& cmd, std::string& log) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) {
        log += "cannot run: " + cmd + "\n";
        return -1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) log.append(buf, n);
    const int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

struct Kernel {
    std::string name;
    int max_threads;
};

// Finds `KEEL_EMU_GLOBAL void [__launch_bounds__(N, ...)] name(` in preprocessed text.
std::vector<Kernel> scan_kernels(const std::string& pre) {
    std::vector<Kernel> out;
    const std::string mark = "KEEL_EMU_GLOBAL";
    size_t pos = 0;
    while ((pos = pre.find(mark, pos)) != std::string::npos) {
        size_t i = pos + mark.size();
        pos = i;
        auto skip_ws = [&] { while (i < pre.size() && std::isspace(static_cast<unsigned char>(pre[i]))) ++i; };
        auto word = [&] {
            skip_ws();
            const size_t b = i;
            while (i < pre.size() && is_ident(pre[i])) ++i;
            return pre.substr(b, i - b);
        };
        if (word() != "void") continue;
        Kernel k{word(), 0};
        if (k.name == "__launch_bounds__") {
            skip_ws();
            if (i < pre.size() && pre[i] == '(') k.max_threads = std::atoi(pre.c_str() + i + 1);
            int depth = 0;
            for (; i < pre.size(); ++i) {
                if (pre[i] == '(') ++depth;
                if (pre[i] == ')' && --depth == 0) { ++i; break; }
            }
            k.name = word();
        }
        if (!k.name.empty()) out.push_back(k);
    }
    return out;
}

Result compile(Program& prog) {
    const std::string dir = library_dir();
    const std::string header = dir + "/keel_emu_device.h";
    std::string header_text;
    if (!read_file(header, header_text)) {
        prog.log = "keel cuda-emu: missing " + header + "\n";
        return NVRTC_ERROR_INTERNAL_ERROR;
    }
    const char* env_cache = std::getenv("KEEL_CUDA_EMU_CACHE");
    const std::string cache = env_cache && *env_cache ? env_cache : dir + "/cache";
    mkdir(cache.c_str(), 0755);
    const char* env_cxx = std::getenv("CXX");
    const std::string cxx = env_cxx && *env_cxx ? env_cxx : "g++";

    // -fno-strict-aliasing: kernels reinterpret float* as float4* and u16* as u32*, as
    // CUDA allows. -ffp-contract=off: __f*_rn must stay single IEEE operations.
    // -fsanitize=alignment,bounds with traps: a misaligned vector access (a GPU faults on
    // it) or an out-of-bounds index into a fixed-size array (shared memory, registers)
    // executes ud2; the driver turns that SIGILL into a launch error.
    const std::string flags = " -O2 -march=native -g0 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing"
                              " -ffp-contract=off -fsanitize=alignment,bounds -fsanitize-undefined-trap-on-error"
                              " -Wall -Wno-unknown-pragmas -Wno-unused-function"
                              " -Wno-unused-variable -Wno-unused-but-set-variable ";
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx",
             static_cast<unsigned long long>(fnv1a(prog.source, fnv1a(cxx + flags, fnv1a(header_text)))));
    const std::string so = cache + "/" + prog.name + "-" + hash + ".so";
    struct stat st;
    if (stat(so.c_str(), &st) != 0) {
        static std::atomic<int> counter{0};
        const std::string tmp = cache + "/tmp-" + std::to_string(getpid()) + "-" +
                                std::to_string(counter.fetch_add(1)) + "-" + prog.name;
        if (!write_file(tmp + ".cu", prog.source)) {
            prog.log = "keel cuda-emu: cannot write " + tmp + ".cu\n";
            return NVRTC_ERROR_INTERNAL_ERROR;
        }
        const std::string common = " -std=gnu++17 -x c++ -include " + quote(header) + " ";
        std::string log;
        if (run(cxx + common + "-DKEEL_EMU_SCAN -E -P " + quote(tmp + ".cu") + " -o " + quote(tmp + ".ii"), log) != 0) {
            prog.log = log;
            return NVRTC_ERROR_COMPILATION;
        }
        std::string pre;
        read_file(tmp + ".ii", pre);
        std::string entry = "\n// keel cuda-emu entry points\n";
        for (const Kernel& k : scan_kernels(pre)) {
            entry += "extern \"C\" __attribute__((visibility(\"default\"))) int keel_emu_launch_" + k.name +
                     "(const keel_emu::Launch* l, void** p, char* err, unsigned long errlen) {\n"
                     "    keel_emu::Launch c = *l;\n    c.max_threads = " + std::to_string(k.max_threads) + ";\n"
                     "    return keel_emu::launch(&c, p, [](void** q) { keel_emu::invoke(&" + k.name + ", q); }, err, errlen);\n}\n";
        }
        if (!write_file(tmp + ".cpp", prog.source + entry)) {
            prog.log = "keel cuda-emu: cannot write " + tmp + ".cpp\n";
            return NVRTC_ERROR_INTERNAL_ERROR;
        }
        const int rc = run(cxx + common + flags + quote(tmp + ".cpp") + " -o " + quote(tmp + ".so"), log);
        std::remove((tmp + ".cu").c_str());
        std::remove((tmp + ".ii").c_str());
        if (rc != 0) {
            prog.log = log;
            std::remove((tmp + ".cpp").c_str());
            return NVRTC_ERROR_COMPILATION;
        }
        std::remove((tmp + ".cpp").c_str());
        if (std::rename((tmp + ".so").c_str(), so.c_str()) != 0) {
            prog.log = "keel cuda-emu: cannot move the object into " + cache + "\n";
            return NVRTC_ERROR_INTERNAL_ERROR;
        }
        prog.log = log;
    }
    prog.ptx = "// keel-cuda-emu module (host object, not PTX)\n.keel_emu_object " + so + "\n";
    return NVRTC_SUCCESS;
}

}  // namespace

extern "C" {

typedef Program* nvrtcProgram;

const char* nvrtcGetErrorString(int r) {
    switch (r) {
        case NVRTC_SUCCESS: return "NVRTC_SUCCESS";
        case NVRTC_ERROR_COMPILATION: return "NVRTC_ERROR_COMPILATION";
        case NVRTC_ERROR_INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
        case NVRTC_ERROR_INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
        default: return "NVRTC_ERROR (keel cuda-emu)";
    }
}

// Reported as 13.0, the NVRTC the kernels target. Use a separate KEEL_KERNEL_CACHE for
// emulated runs: the "PTX" cached there is a host-object reference.
int nvrtcVersion(int* major, int* minor) {
    if (!major || !minor) return NVRTC_ERROR_INVALID_INPUT;
    *major = 13;
    *minor = 0;
    return NVRTC_SUCCESS;
}

int nvrtcCreateProgram(nvrtcProgram* prog, const char* src, const char* name, int num_headers,
                       const char* const*, const char* const*) {
    if (!prog || !src || num_headers < 0) return NVRTC_ERROR_INVALID_INPUT;
    if (num_headers > 0) return NVRTC_ERROR_INVALID_INPUT;  // keel sources are self-contained
    Program* p = new Program;
    p->source = src;
    p->name = name ? name : "default_program";
    for (char& c : p->name) if (!is_ident(c)) c = '_';
    *prog = p;
    return NVRTC_SUCCESS;
}

int nvrtcCompileProgram(nvrtcProgram prog, int, const char* const*) {
    if (!prog) return NVRTC_ERROR_INVALID_PROGRAM;
    return compile(*prog);
}

int nvrtcDestroyProgram(nvrtcProgram* prog) {
    if (!prog || !*prog) return NVRTC_ERROR_INVALID_PROGRAM;
    delete *prog;
    *prog = nullptr;
    return NVRTC_SUCCESS;
}

int nvrtcGetProgramLogSize(nvrtcProgram prog, size_t* size) {
    if (!prog || !size) return NVRTC_ERROR_INVALID_INPUT;
    *size = prog->log.size() + 1;
    return NVRTC_SUCCESS;
}

int nvrtcGetProgramLog(nvrtcProgram prog, char* log) {
    if (!prog || !log) return NVRTC_ERROR_INVALID_INPUT;
    std::memcpy(log, prog->log.c_str(), prog->log.size() + 1);
    return NVRTC_SUCCESS;
}

int nvrtcGetPTXSize(nvrtcProgram prog, size_t* size) {
    if (!prog || !size) return NVRTC_ERROR_INVALID_INPUT;
    *size = prog->ptx.size() + 1;
    return NVRTC_SUCCESS;
}

int nvrtcGetPTX(nvrtcProgram prog, char* ptx) {
    if (!prog || !ptx) return NVRTC_ERROR_INVALID_INPUT;
    std::memcpy(ptx, prog->ptx.c_str(), prog->ptx.size() + 1);
    return NVRTC_SUCCESS;
}

}  // extern "C"
