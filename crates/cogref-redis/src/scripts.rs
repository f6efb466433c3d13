//! Every piece of logic that runs inside Redis, in one place to audit. Each script is atomic on
//! the server, which is what makes the lease and the version checks safe across a fleet.

use std::sync::LazyLock;

use redis::Script;

/// Takes the lease if it is free. `KEYS[1]` lease, `ARGV[1]` owner, `ARGV[2]` time to live (ms).
///
/// Idempotent for one owner value: if an earlier attempt of the same call took the lease and
/// its reply was lost, the retry finds its own owner and reports success.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
",
    )
});

/// Releases the lease only if it is still ours (compare-and-delete), and tells waiters.
/// `KEYS[1]` lease, `ARGV[1]` owner, `ARGV[2]` channel.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
",
    )
});

/// Compare-and-set of the token set on its version. `KEYS[1]` the set (a hash: `v` version,
/// `d` data), `ARGV[1]` the version the writer loaded (`''`: nothing stored), `ARGV[2]` the new
/// version, `ARGV[3]` the data, `ARGV[4]` channel.
///
/// Returns `{1, new version}` or `{0, version found}`. The writer chooses the new version
/// (it seals the data for it): the loaded one plus one, or for a new entry the server's clock in
/// microseconds (and above any version the writer has seen), so versions do not repeat even if
/// Redis lost its data: a writer that loaded before the loss cannot match a version issued after
/// it. Versions are compared as strings, never as Lua numbers (exact only below 2^53).
///
/// Safe to run twice: a retry whose first run was applied (its reply lost) finds its own version
/// and data, and reports success.
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'v')
if not current then current = '' end
if current == ARGV[2] and redis.call('HGET', KEYS[1], 'd') == ARGV[3] then return {1, current} end
if current ~= ARGV[1] then return {0, current} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return {1, ARGV[2]}
",
    )
});

/// Reads the token set without fetching a value too large to be one. `KEYS[1]` the set,
/// `ARGV[1]` the largest data length read. Returns `{version, data, data length}`, with the data
/// left out (nil) when it is longer than `ARGV[1]`.
pub(crate) static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HGET', KEYS[1], 'v')
local n = redis.call('HSTRLEN', KEYS[1], 'd')
if n > tonumber(ARGV[1]) then return {v, false, n} end
return {v, redis.call('HGET', KEYS[1], 'd'), n}
",
    )
});
