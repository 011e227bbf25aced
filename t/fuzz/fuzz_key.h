/*
 * Shared by the fuzz target and the seed generator: the tokens in the
 * seed corpus are signed with this key and verified at this time.
 */


#ifndef _FUZZ_KEY_H_INCLUDED_
#define _FUZZ_KEY_H_INCLUDED_


#define FUZZ_KEY      "fuzz-key-0123456789abcdef-0123456"
#define FUZZ_KEY_LEN  (sizeof(FUZZ_KEY) - 1)
#define FUZZ_NOW      1700000000
#define FUZZ_LEEWAY   5


#endif /* _FUZZ_KEY_H_INCLUDED_ */
