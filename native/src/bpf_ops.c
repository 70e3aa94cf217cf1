/* libbpf object loading and raw bpf(2) operations on maps, programs and links. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "common.h"

#define MAX_OBJECTS 32
static struct bpf_object *objects[MAX_OBJECTS];

static napi_value set_str(napi_env env, napi_value obj, const char *key, const char *val)
{
	napi_value v;

	napi_create_string_utf8(env, val ? val : "", NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, obj, key, v);
	return obj;
}

static void set_int(napi_env env, napi_value obj, const char *key, int64_t val)
{
	napi_set_named_property(env, obj, key, make_int(env, val));
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * The size `sizes` (a plain object, or null) gives a map by its name, before load; 0 when it names
 * none. TypeScript checks the numbers.
 */
static int size_of_map(napi_env env, napi_value sizes, const char *name, uint32_t *out)
{
	bool has = false;
	napi_value v;

	*out = 0;
	if (!sizes)
		return 0;
	if (napi_has_named_property(env, sizes, name, &has) != napi_ok)
		return -1;
	if (!has)
		return 0;
	if (napi_get_named_property(env, sizes, name, &v) != napi_ok || napi_get_value_uint32(env, v, out) != napi_ok)
		return -1;
	return 0;
}

/*
 * loadObject(path, pinDir, rodata|null, sizes|null) -> { handle, rodataSize, programs: [...], maps: [...] }
 * Every non-internal map is pinned as <pinDir>/<map name>, reusing an existing pin; `sizes` sets
 * max_entries by map name before load (a reused pin must have the same size).
 */
static napi_value load_object(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], result, progs, maps, item, sizes = NULL;
	char path[4096], pin_dir[4096], pin_path[4352];
	uint32_t max_entries;
	void *rodata = NULL;
	size_t rodata_len = 0, rodata_size = 0;
	napi_valuetype t;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	int slot, err, i;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)) || arg_string(env, argv[1], pin_dir, sizeof(pin_dir)))
		return throw_plain(env, "loadObject: bad arguments");
	napi_typeof(env, argv[2], &t);
	if (t != napi_null && t != napi_undefined && arg_buffer(env, argv[2], &rodata, &rodata_len))
		return throw_plain(env, "loadObject: rodata must be a Buffer");
	if (argc >= 4) {
		napi_typeof(env, argv[3], &t);
		if (t == napi_object)
			sizes = argv[3];
		else if (t != napi_null && t != napi_undefined)
			return throw_plain(env, "loadObject: sizes must be an object");
	}
	for (slot = 0; slot < MAX_OBJECTS && objects[slot]; slot++)
		;
	if (slot == MAX_OBJECTS)
		return throw_errno(env, EMFILE, "bpf_object__open", path);

	libbpf_clear_log();
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return throw_errno(env, errno ? errno : EINVAL, "bpf_object__open", path);

	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map)) {
			if (ends_with(bpf_map__name(map), ".rodata")) {
				const void *init = bpf_map__initial_value(map, &rodata_size);
				if (rodata && init) {
					void *copy;
					if (rodata_len > rodata_size) {
						bpf_object__close(obj);
						return throw_errno(env, EINVAL, "bpf_map__set_initial_value", path);
					}
					copy = malloc(rodata_size);
					if (!copy) {
						bpf_object__close(obj);
						return throw_errno(env, ENOMEM, "malloc", path);
					}
					memcpy(copy, init, rodata_size);
					memcpy(copy, rodata, rodata_len);
					err = bpf_map__set_initial_value(map, copy, rodata_size);
					free(copy);
					if (err) {
						bpf_object__close(obj);
						return throw_errno(env, -err, "bpf_map__set_initial_value", path);
					}
				}
			}
			continue;
		}
		if (size_of_map(env, sizes, bpf_map__name(map), &max_entries)) {
			bpf_object__close(obj);
			return throw_plain(env, "loadObject: bad map size");
		}
		if (max_entries > 0) {
			err = bpf_map__set_max_entries(map, max_entries);
			if (err) {
				bpf_object__close(obj);
				return throw_errno(env, -err, "bpf_map__set_max_entries", bpf_map__name(map));
			}
		}
		snprintf(pin_path, sizeof(pin_path), "%s/%s", pin_dir, bpf_map__name(map));
		err = bpf_map__set_pin_path(map, pin_path);
		if (err) {
			bpf_object__close(obj);
			return throw_errno(env, -err, "bpf_map__set_pin_path", pin_path);
		}
	}

	err = bpf_object__load(obj);
	if (err) {
		napi_value ret = throw_errno(env, -err, "bpf_object__load", path);
		bpf_object__close(obj);
		return ret;
	}
	objects[slot] = obj;

	napi_create_object(env, &result);
	set_int(env, result, "handle", slot);
	set_int(env, result, "rodataSize", (int64_t)rodata_size);
	napi_create_array(env, &progs);
	i = 0;
	bpf_object__for_each_program(prog, obj) {
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_program__name(prog));
		set_str(env, item, "section", bpf_program__section_name(prog));
		set_int(env, item, "fd", bpf_program__fd(prog));
		set_int(env, item, "attachType", bpf_program__expected_attach_type(prog));
		napi_set_element(env, progs, i++, item);
	}
	napi_set_named_property(env, result, "programs", progs);
	napi_create_array(env, &maps);
	i = 0;
	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map))
			continue;
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_map__name(map));
		set_str(env, item, "pinPath", bpf_map__pin_path(map));
		set_int(env, item, "fd", bpf_map__fd(map));
		napi_set_element(env, maps, i++, item);
	}
	napi_set_named_property(env, result, "maps", maps);
	return result;
}

/* closeObject(handle): closes the object's fds; attached links keep programs alive. */
static napi_value close_object(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	int32_t slot;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &slot) || slot < 0 || slot >= MAX_OBJECTS)
		return throw_plain(env, "closeObject: bad handle");
	if (objects[slot]) {
		bpf_object__close(objects[slot]);
		objects[slot] = NULL;
	}
	return NULL;
}

/* linkCreate(progFd, targetFd, attachType) -> link fd */
static napi_value link_create(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int32_t prog_fd, target_fd, type;
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &prog_fd) || arg_int32(env, argv[1], &target_fd) || arg_int32(env, argv[2], &type))
		return throw_plain(env, "linkCreate: bad arguments");
	fd = bpf_link_create(prog_fd, target_fd, (enum bpf_attach_type)type, NULL);
	if (fd < 0)
		return throw_errno(env, -fd, "bpf_link_create", NULL);
	return make_int(env, fd);
}

/* linkUpdate(linkFd, progFd): atomically swap the program behind a link. */
static napi_value link_update(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	int32_t link_fd, prog_fd;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &link_fd) || arg_int32(env, argv[1], &prog_fd))
		return throw_plain(env, "linkUpdate: bad arguments");
	err = bpf_link_update(link_fd, prog_fd, NULL);
	if (err)
		return throw_errno(env, -err, "bpf_link_update", NULL);
	return NULL;
}

/* linkInfo(linkFd) -> { id, progId, type, cgroupId, attachType } */
static napi_value link_info(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, big;
	int32_t fd;
	struct bpf_link_info li;
	__u32 len = sizeof(li);
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd))
		return throw_plain(env, "linkInfo: bad arguments");
	memset(&li, 0, sizeof(li));
	err = bpf_obj_get_info_by_fd(fd, &li, &len);
	if (err)
		return throw_errno(env, -err, "bpf_obj_get_info_by_fd", NULL);
	napi_create_object(env, &out);
	set_int(env, out, "id", li.id);
	set_int(env, out, "progId", li.prog_id);
	set_int(env, out, "type", li.type);
	if (li.type == BPF_LINK_TYPE_CGROUP) {
		napi_create_bigint_uint64(env, li.cgroup.cgroup_id, &big);
		napi_set_named_property(env, out, "cgroupId", big);
		set_int(env, out, "attachType", li.cgroup.attach_type);
	}
	return out;
}

/* objPin(fd, path) */
static napi_value obj_pin(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	int32_t fd;
	char path[4096];
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd) || arg_string(env, argv[1], path, sizeof(path)))
		return throw_plain(env, "objPin: bad arguments");
	err = bpf_obj_pin(fd, path);
	if (err)
		return throw_errno(env, -err, "bpf_obj_pin", path);
	return NULL;
}

/* objGet(path) -> fd of a pinned map, program or link */
static napi_value obj_get(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	char path[4096];
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "objGet: bad arguments");
	fd = bpf_obj_get(path);
	if (fd < 0)
		return throw_errno(env, -fd, "bpf_obj_get", path);
	return make_int(env, fd);
}

/* mapInfo(fd) -> { id, name, type, keySize, valueSize, maxEntries } */
static napi_value map_info(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	int32_t fd;
	struct bpf_map_info mi;
	__u32 len = sizeof(mi);
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd))
		return throw_plain(env, "mapInfo: bad arguments");
	memset(&mi, 0, sizeof(mi));
	err = bpf_obj_get_info_by_fd(fd, &mi, &len);
	if (err)
		return throw_errno(env, -err, "bpf_obj_get_info_by_fd", NULL);
	napi_create_object(env, &out);
	set_int(env, out, "id", mi.id);
	set_str(env, out, "name", mi.name);
	set_int(env, out, "type", mi.type);
	set_int(env, out, "keySize", mi.key_size);
	set_int(env, out, "valueSize", mi.value_size);
	set_int(env, out, "maxEntries", mi.max_entries);
	return out;
}

/* progName(id) -> the name of the program with this kernel id, or null when it is gone */
static napi_value prog_name(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	int32_t id;
	struct bpf_prog_info pi;
	__u32 len = sizeof(pi);
	int fd, err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &id) || id <= 0)
		return throw_plain(env, "progName: bad arguments");
	fd = bpf_prog_get_fd_by_id((__u32)id);
	if (fd < 0) {
		if (errno == ENOENT || fd == -ENOENT)
			return napi_get_null(env, &out) == napi_ok ? out : NULL;
		return throw_errno(env, fd == -1 ? errno : -fd, "bpf_prog_get_fd_by_id", NULL);
	}
	memset(&pi, 0, sizeof(pi));
	err = bpf_obj_get_info_by_fd(fd, &pi, &len);
	close(fd);
	if (err)
		return throw_errno(env, -err, "bpf_obj_get_info_by_fd", NULL);
	napi_create_string_utf8(env, pi.name, strnlen(pi.name, sizeof(pi.name)), &out);
	return out;
}

/* mapLookup(fd, key, valueBytes) -> Buffer | null */
static napi_value map_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 3, key_len;
	napi_value argv[3], out;
	int32_t fd, vsize;
	void *key, *val;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd) || arg_buffer(env, argv[1], &key, &key_len) || arg_int32(env, argv[2], &vsize) ||
	    vsize <= 0)
		return throw_plain(env, "mapLookup: bad arguments");
	val = calloc(1, (size_t)vsize);
	if (!val)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	err = bpf_map_lookup_elem(fd, key, val);
	if (err) {
		free(val);
		if (-err == ENOENT)
			return napi_get_null(env, &out) == napi_ok ? out : NULL;
		return throw_errno(env, -err, "bpf_map_lookup_elem", NULL);
	}
	out = make_buffer_copy(env, val, (size_t)vsize);
	free(val);
	return out;
}

/* mapUpdate(fd, key, value, flags) */
static napi_value map_update(napi_env env, napi_callback_info info)
{
	size_t argc = 4, klen, vlen;
	napi_value argv[4];
	int32_t fd, flags;
	void *key, *val;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd) || arg_buffer(env, argv[1], &key, &klen) || arg_buffer(env, argv[2], &val, &vlen) ||
	    arg_int32(env, argv[3], &flags))
		return throw_plain(env, "mapUpdate: bad arguments");
	err = bpf_map_update_elem(fd, key, val, (__u64)flags);
	if (err)
		return throw_errno(env, -err, "bpf_map_update_elem", NULL);
	return NULL;
}

/* mapDelete(fd, key) -> true if deleted, false if it was absent */
static napi_value map_delete(napi_env env, napi_callback_info info)
{
	size_t argc = 2, klen;
	napi_value argv[2], out;
	int32_t fd;
	void *key;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd) || arg_buffer(env, argv[1], &key, &klen))
		return throw_plain(env, "mapDelete: bad arguments");
	err = bpf_map_delete_elem(fd, key);
	if (err && -err != ENOENT)
		return throw_errno(env, -err, "bpf_map_delete_elem", NULL);
	napi_get_boolean(env, err == 0, &out);
	return out;
}

/* mapNextKey(fd, key|null, keySize) -> Buffer | null (end) */
static napi_value map_next_key(napi_env env, napi_callback_info info)
{
	size_t argc = 3, klen = 0;
	napi_value argv[3], out;
	int32_t fd, ksize;
	void *key = NULL, *next;
	napi_valuetype t;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	napi_typeof(env, argv[1], &t);
	if (arg_int32(env, argv[0], &fd) || arg_int32(env, argv[2], &ksize) || ksize <= 0 ||
	    (t != napi_null && arg_buffer(env, argv[1], &key, &klen)))
		return throw_plain(env, "mapNextKey: bad arguments");
	next = calloc(1, (size_t)ksize);
	if (!next)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	err = bpf_map_get_next_key(fd, key, next);
	if (err) {
		free(next);
		if (-err == ENOENT)
			return napi_get_null(env, &out) == napi_ok ? out : NULL;
		return throw_errno(env, -err, "bpf_map_get_next_key", NULL);
	}
	out = make_buffer_copy(env, next, (size_t)ksize);
	free(next);
	return out;
}

/*
 * mapCount(fd, keySize, max) -> the number of keys (at most `max`): one walk in C, so a scrape of
 * a big map costs a syscall per entry and no JavaScript objects.
 */
static napi_value map_count(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	int32_t fd, ksize, max;
	unsigned char *a, *b, *tmp;
	int64_t n = 0;
	int err = 0;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd) || arg_int32(env, argv[1], &ksize) || arg_int32(env, argv[2], &max) || ksize <= 0 || max < 0)
		return throw_plain(env, "mapCount: bad arguments");
	a = calloc(2, (size_t)ksize);
	if (!a)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	b = a + ksize;
	err = bpf_map_get_next_key(fd, NULL, a);
	while (err == 0 && n < max) {
		n++;
		err = bpf_map_get_next_key(fd, a, b);
		tmp = a;
		a = b;
		b = tmp;
	}
	free(a < b ? a : b);
	if (err && -err != ENOENT && errno != ENOENT)
		return throw_errno(env, err < 0 ? -err : errno, "bpf_map_get_next_key", NULL);
	return make_int(env, n);
}

static napi_value num_possible_cpus(napi_env env, napi_callback_info info)
{
	int n = libbpf_num_possible_cpus();

	if (n < 0)
		return throw_errno(env, -n, "libbpf_num_possible_cpus", NULL);
	return make_int(env, n);
}

void register_bpf_ops(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "loadObject", NULL, load_object, NULL, NULL, NULL, napi_default, NULL },
		{ "closeObject", NULL, close_object, NULL, NULL, NULL, napi_default, NULL },
		{ "linkCreate", NULL, link_create, NULL, NULL, NULL, napi_default, NULL },
		{ "linkUpdate", NULL, link_update, NULL, NULL, NULL, napi_default, NULL },
		{ "linkInfo", NULL, link_info, NULL, NULL, NULL, napi_default, NULL },
		{ "objPin", NULL, obj_pin, NULL, NULL, NULL, napi_default, NULL },
		{ "objGet", NULL, obj_get, NULL, NULL, NULL, napi_default, NULL },
		{ "mapInfo", NULL, map_info, NULL, NULL, NULL, napi_default, NULL },
		{ "mapLookup", NULL, map_lookup, NULL, NULL, NULL, napi_default, NULL },
		{ "mapUpdate", NULL, map_update, NULL, NULL, NULL, napi_default, NULL },
		{ "mapDelete", NULL, map_delete, NULL, NULL, NULL, napi_default, NULL },
		{ "mapNextKey", NULL, map_next_key, NULL, NULL, NULL, napi_default, NULL },
		{ "mapCount", NULL, map_count, NULL, NULL, NULL, napi_default, NULL },
		{ "progName", NULL, prog_name, NULL, NULL, NULL, napi_default, NULL },
		{ "numPossibleCpus", NULL, num_possible_cpus, NULL, NULL, NULL, napi_default, NULL },
	};

	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
