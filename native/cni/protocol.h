/*
 * palisade-cni <-> agent wire protocol, the C side. The protocol is defined (and described) once,
 * in agent/cni/protocol.ts; these constants repeat its version, limits and error codes, and
 * test/unit/agent/cni/protocol-header.test.ts fails if the two ever differ.
 */
#ifndef PALISADE_CNI_PROTOCOL_H
#define PALISADE_CNI_PROTOCOL_H

#define PCNI_PROTOCOL_VERSION 1
#define PCNI_MAX_REQUEST_BYTES (96 * 1024)
#define PCNI_MAX_RESPONSE_BYTES 4096
#define PCNI_MAX_CONFIG_BYTES (64 * 1024)
#define PCNI_DEFAULT_TIMEOUT_MS 3000
#define PCNI_MAX_MESSAGE_CHARS 512
/* <DEFAULT_RUN_DIR>/<CNI_SOCKET_NAME> of the agent */
#define PCNI_DEFAULT_SOCKET "/run/palisade/cni.sock"
/* The versions VERSION declares and the agent accepts (CNI_VERSIONS). */
#define PCNI_CNI_VERSIONS "0.3.0", "0.3.1", "0.4.0", "1.0.0"

/* CNI error codes (CniErrorCode): 1-99 from the CNI 1.0.0 spec, 100+ Palisade's own. */
#define PCNI_ERR_INCOMPATIBLE_VERSION 1
#define PCNI_ERR_UNSUPPORTED_FIELD 2
#define PCNI_ERR_UNKNOWN_CONTAINER 3
#define PCNI_ERR_INVALID_ENVIRONMENT 4
#define PCNI_ERR_IO_FAILURE 5
#define PCNI_ERR_DECODE_FAILED 6
#define PCNI_ERR_INVALID_CONFIG 7
#define PCNI_ERR_TRY_AGAIN_LATER 11
#define PCNI_ERR_ENROLL_FAILED 100
#define PCNI_ERR_NOT_ENROLLED 101
#define PCNI_ERR_PROTOCOL 102

#endif
