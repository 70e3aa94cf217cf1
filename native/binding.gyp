{
  "targets": [
    {
      "target_name": "palisade_native",
      "sources": ["src/addon.c", "src/bpf_ops.c", "src/sys_ops.c", "src/probe_ops.c", "src/pod_ops.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
