/*
 * Kernel feature probes for the agent's start (agent/datapath/kernel-probe.ts decides):
 * what an eBPF object needs, read from the object without loading it (program and attach
 * types, the helpers each program calls, map types, CO-RE relocations), and whether this
 * kernel offers each of those. Probes load nothing that outlives the call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include "common.h"

/* linux/bpf.h lists the helpers comma-separated: FN(unspec), FN(map_lookup_elem), … */
#define HELPER_NAME(x) [BPF_FUNC_##x] = "bpf_" #x
static const char *const helper_names[] = { __BPF_FUNC_MAPPER(HELPER_NAME) };
#define HELPER_NAMES (sizeof(helper_names) / sizeof(helper_names[0]))
#define MAX_HELPERS 256

static void set_int(napi_env env, napi_value obj, const char *key, int64_t val)
{
	napi_set_named_property(env, obj, key, make_int(env, val));
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *val)
{
	napi_value v;

	napi_create_string_utf8(env, val ? val : "", NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, obj, key, v);
}

/* Distinct helper ids a program calls (call insns with src_reg 0; subprogram and kfunc calls differ). */
static size_t program_helpers(const struct bpf_program *prog, int32_t *out, size_t cap)
{
	const struct bpf_insn *insns = bpf_program__insns(prog);
	size_t n = bpf_program__insn_cnt(prog), count = 0, i, j;

	for (i = 0; i < n; i++) {
		if (insns[i].code != (BPF_JMP | BPF_CALL) || insns[i].src_reg != 0)
			continue;
		for (j = 0; j < count && out[j] != insns[i].imm; j++)
			;
		if (j == count && count < cap)
			out[count++] = insns[i].imm;
	}
	return count;
}

/* Whether the object's .BTF.ext carries CO-RE relocations (which need the kernel's own BTF). */
static int has_core_relocations(const char *path)
{
	struct btf_ext_header_min {
		uint16_t magic;
		uint8_t version, flags;
		uint32_t hdr_len, func_info_off, func_info_len, line_info_off, line_info_len;
		uint32_t core_relo_off, core_relo_len;
	} hdr;
	int fd, found = 0;
	Elf *elf;
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_getshdrstrndx(elf, &shstrndx)) {
		if (elf)
			elf_end(elf);
		close(fd);
		return -EINVAL;
	}
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		Elf_Data *data;
		const char *name;

		if (!gelf_getshdr(scn, &shdr))
			continue;
		name = elf_strptr(elf, shstrndx, shdr.sh_name);
		if (!name || strcmp(name, ".BTF.ext") != 0)
			continue;
		data = elf_getdata(scn, NULL);
		if (data && data->d_size >= sizeof(hdr)) {
			memcpy(&hdr, data->d_buf, sizeof(hdr));
			found = hdr.magic == 0xeB9F && hdr.hdr_len >= sizeof(hdr) && hdr.core_relo_len > 0;
		}
		break;
	}
	elf_end(elf);
	close(fd);
	return found;
}

/* objectNeeds(path) -> { programs: [{ name, section, progType, progTypeName, attachType, attachTypeName, helpers: [{ id, name }] }], maps: [{ name, type, typeName }], coreRelocations } */
static napi_value object_needs(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result, progs, maps, item, helpers, h;
	char path[4096];
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	int32_t ids[MAX_HELPERS];
	size_t count, k;
	uint32_t i = 0;
	int core;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "objectNeeds: bad arguments");
	libbpf_clear_log();
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return throw_errno(env, errno ? errno : EINVAL, "bpf_object__open", path);
	core = has_core_relocations(path);
	if (core < 0) {
		bpf_object__close(obj);
		return throw_errno(env, -core, "elf_begin", path);
	}

	napi_create_object(env, &result);
	napi_create_array(env, &progs);
	bpf_object__for_each_program(prog, obj) {
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_program__name(prog));
		set_str(env, item, "section", bpf_program__section_name(prog));
		set_int(env, item, "progType", bpf_program__type(prog));
		set_str(env, item, "progTypeName", libbpf_bpf_prog_type_str(bpf_program__type(prog)));
		set_int(env, item, "attachType", bpf_program__expected_attach_type(prog));
		set_str(env, item, "attachTypeName", libbpf_bpf_attach_type_str(bpf_program__expected_attach_type(prog)));
		count = program_helpers(prog, ids, MAX_HELPERS);
		napi_create_array(env, &helpers);
		for (k = 0; k < count; k++) {
			napi_create_object(env, &h);
			set_int(env, h, "id", ids[k]);
			if (ids[k] >= 0 && (size_t)ids[k] < HELPER_NAMES && helper_names[ids[k]])
				set_str(env, h, "name", helper_names[ids[k]]);
			napi_set_element(env, helpers, (uint32_t)k, h);
		}
		napi_set_named_property(env, item, "helpers", helpers);
		napi_set_element(env, progs, i++, item);
	}
	napi_set_named_property(env, result, "programs", progs);
	napi_create_array(env, &maps);
	i = 0;
	bpf_object__for_each_map(map, obj) {
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_map__name(map));
		set_int(env, item, "type", bpf_map__type(map));
		set_str(env, item, "typeName", libbpf_bpf_map_type_str(bpf_map__type(map)));
		napi_set_element(env, maps, i++, item);
	}
	napi_set_named_property(env, result, "maps", maps);
	napi_get_boolean(env, core == 1, &item);
	napi_set_named_property(env, result, "coreRelocations", item);
	bpf_object__close(obj);
	return result;
}

/* Unwraps `n` int32 arguments (validated in TypeScript). */
static int int_args(napi_env env, napi_callback_info info, int32_t *out, size_t n)
{
	size_t argc = 2, i;
	napi_value argv[2];

	if (n > 2 || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n)
		return -1;
	for (i = 0; i < n; i++)
		if (arg_int32(env, argv[i], &out[i]))
			return -1;
	return 0;
}

/* libbpf's probes answer 1 (there), 0 (not there) or a negative errno. */
static napi_value probe_result(napi_env env, int ret, const char *what)
{
	napi_value out;

	if (ret < 0)
		return throw_errno(env, -ret, what, NULL);
	napi_get_boolean(env, ret == 1, &out);
	return out;
}

/*
 * probeProgram(progType, attachType) -> boolean: loads `r0 = 1; exit` with that expected attach
 * type (the kernel checks it for the program types that have several). EINVAL means "not here";
 * any other failure (EPERM without privileges) is thrown.
 */
static napi_value probe_program(napi_env env, napi_callback_info info)
{
	int32_t a[2];
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts);
	int fd;

	if (int_args(env, info, a, 2))
		return throw_plain(env, "probeProgram: bad arguments");
	opts.expected_attach_type = (enum bpf_attach_type)a[1];
	fd = bpf_prog_load((enum bpf_prog_type)a[0], NULL, "GPL", insns, 2, &opts);
	if (fd >= 0)
		close(fd);
	else if (errno != EINVAL)
		return throw_errno(env, errno, "bpf_prog_load", NULL);
	return probe_result(env, fd >= 0, "bpf_prog_load");
}

/* probeProgType(progType) -> boolean */
static napi_value probe_prog_type(napi_env env, napi_callback_info info)
{
	int32_t a[1];

	if (int_args(env, info, a, 1))
		return throw_plain(env, "probeProgType: bad arguments");
	return probe_result(env, libbpf_probe_bpf_prog_type((enum bpf_prog_type)a[0], NULL), "libbpf_probe_bpf_prog_type");
}

/* probeHelper(progType, helperId) -> boolean */
static napi_value probe_helper(napi_env env, napi_callback_info info)
{
	int32_t a[2];

	if (int_args(env, info, a, 2))
		return throw_plain(env, "probeHelper: bad arguments");
	return probe_result(env, libbpf_probe_bpf_helper((enum bpf_prog_type)a[0], (enum bpf_func_id)a[1], NULL),
			    "libbpf_probe_bpf_helper");
}

/* probeMapType(mapType) -> boolean */
static napi_value probe_map_type(napi_env env, napi_callback_info info)
{
	int32_t a[1];

	if (int_args(env, info, a, 1))
		return throw_plain(env, "probeMapType: bad arguments");
	return probe_result(env, libbpf_probe_bpf_map_type((enum bpf_map_type)a[0], NULL), "libbpf_probe_bpf_map_type");
}

void register_probe_ops(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "objectNeeds", NULL, object_needs, NULL, NULL, NULL, napi_default, NULL },
		{ "probeProgram", NULL, probe_program, NULL, NULL, NULL, napi_default, NULL },
		{ "probeProgType", NULL, probe_prog_type, NULL, NULL, NULL, napi_default, NULL },
		{ "probeHelper", NULL, probe_helper, NULL, NULL, NULL, napi_default, NULL },
		{ "probeMapType", NULL, probe_map_type, NULL, NULL, NULL, napi_default, NULL },
	};

	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
