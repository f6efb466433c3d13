// The AWS SDK for JavaScript v3 and Amplify JS, driven in Node against a started cogref
// emulator. Usage: node js/suite.mjs http://127.0.0.1:PORT
// Prints one line per check: check<TAB>client<TAB>ok|FAIL<TAB>name<TAB>detail.

import {
  CognitoIdentityProviderClient,
  CreateUserPoolCommand,
  CreateUserPoolClientCommand,
  DescribeUserPoolClientCommand,
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  InitiateAuthCommand,
  GetTokensFromRefreshTokenCommand,
  RevokeTokenCommand,
  GlobalSignOutCommand,
  GetUserCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { Amplify } from 'aws-amplify';
import { signIn, signOut, fetchAuthSession } from 'aws-amplify/auth';
import { cognitoUserPoolsTokenProvider } from 'aws-amplify/auth/cognito';

const endpoint = process.argv[2];
if (!endpoint) {
  console.error('usage: node js/suite.mjs ENDPOINT');
  process.exit(2);
}
const region = 'eu-west-1';
let failures = 0;

function report(client, check, ok, detail = '') {
  if (!ok) failures += 1;
  const clean = (x) => String(x).replace(/[\t\r\n]+/g, ' ').slice(0, 300);
  console.log(['check', client, ok ? 'ok' : 'FAIL', clean(check), clean(detail)].join('\t'));
}

/** Runs one check; a thrown error is a failed check with its message. */
async function check(client, name, body) {
  try {
    const detail = await body();
    report(client, name, true, detail ?? '');
  } catch (e) {
    report(client, name, false, `${e?.name ?? 'Error'}: ${e?.message ?? e}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

async function expectError(promise, name, messagePart) {
  try {
    await promise;
  } catch (e) {
    assert(e.name === name, `expected ${name}, got ${e.name}: ${e.message}`);
    if (messagePart) assert(e.message.includes(messagePart), `message "${e.message}" lacks "${messagePart}"`);
    return `${e.name}: ${e.message}`;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

async function admin(path, body) {
  const r = await fetch(`${endpoint}/_emulator/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`admin ${path}: ${JSON.stringify(json)}`);
  return json;
}

const served = async () => (await admin('counters')).requests_served;

// Unsigned operations need no credentials; the set-up operations are signed, and the emulator
// accepts any signature.
const sdk = new CognitoIdentityProviderClient({
  region,
  endpoint,
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-checked' },
  maxAttempts: 3,
});

const PASSWORD = 'Interop-Passw0rd!';

async function setUp(name, clientSettings) {
  const { UserPool } = await sdk.send(new CreateUserPoolCommand({ PoolName: name }));
  const { UserPoolClient } = await sdk.send(
    new CreateUserPoolClientCommand({
      UserPoolId: UserPool.Id,
      ClientName: `${name}-client`,
      ExplicitAuthFlows: ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
      ...clientSettings,
    }),
  );
  return { pool: UserPool, client: UserPoolClient };
}

async function addUser(poolId, username) {
  await sdk.send(new AdminCreateUserCommand({ UserPoolId: poolId, Username: username, MessageAction: 'SUPPRESS' }));
  await sdk.send(
    new AdminSetUserPasswordCommand({ UserPoolId: poolId, Username: username, Password: PASSWORD, Permanent: true }),
  );
}

async function passwordSignIn(clientId, username) {
  const out = await sdk.send(
    new InitiateAuthCommand({
      AuthFlow: 'USER_PASSWORD_AUTH',
      ClientId: clientId,
      AuthParameters: { USERNAME: username, PASSWORD: PASSWORD },
    }),
  );
  return out.AuthenticationResult;
}

const refresh = (clientId, token, extra = {}) =>
  sdk.send(new GetTokensFromRefreshTokenCommand({ ClientId: clientId, RefreshToken: token, ...extra }));

// ---- AWS SDK for JavaScript v3 -------------------------------------------------------------

async function sdkSuite() {
  const C = 'js-sdk-v3';
  let rot0, rot5, plain;
  await check(C, 'set-up through the standard API', async () => {
    rot0 = await setUp('js-rot0', { RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 0 } });
    rot5 = await setUp('js-rot5', { RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 5 } });
    plain = await setUp('js-plain', {});
    for (const s of [rot0, rot5, plain]) await addUser(s.pool.Id, 'jsuser');
    const d = await sdk.send(
      new DescribeUserPoolClientCommand({ UserPoolId: rot5.pool.Id, ClientId: rot5.client.ClientId }),
    );
    assert(d.UserPoolClient.RefreshTokenRotation.Feature === 'ENABLED', 'rotation described');
    assert(d.UserPoolClient.RefreshTokenRotation.RetryGracePeriodSeconds === 5, 'grace described');
  });
  await check(C, 'validation: grace period over 60 refused', () =>
    expectError(
      sdk.send(
        new CreateUserPoolClientCommand({
          UserPoolId: plain.pool.Id,
          ClientName: 'bad',
          RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 61 },
        }),
      ),
      'InvalidParameterException',
      'Member must have value less than or equal to 60',
    ),
  );
  await check(C, 'refresh without rotation', async () => {
    const signed = await passwordSignIn(plain.client.ClientId, 'jsuser');
    const a = await refresh(plain.client.ClientId, signed.RefreshToken);
    assert(a.AuthenticationResult.AccessToken && !a.AuthenticationResult.RefreshToken, 'no new refresh token');
    assert(!('ChallengeParameters' in a), 'no ChallengeParameters in the output');
    await refresh(plain.client.ClientId, signed.RefreshToken);
    return 'old token keeps working';
  });
  await check(C, 'refresh with rotation (grace 0): reuse refused', async () => {
    const signed = await passwordSignIn(rot0.client.ClientId, 'jsuser');
    const a = await refresh(rot0.client.ClientId, signed.RefreshToken);
    assert(a.AuthenticationResult.RefreshToken && a.AuthenticationResult.RefreshToken !== signed.RefreshToken, 'rotated');
    return expectError(refresh(rot0.client.ClientId, signed.RefreshToken), 'RefreshTokenReuseException');
  });
  await check(C, 'reuse inside and after the grace period', async () => {
    const signed = await passwordSignIn(rot5.client.ClientId, 'jsuser');
    await refresh(rot5.client.ClientId, signed.RefreshToken);
    await refresh(rot5.client.ClientId, signed.RefreshToken); // inside the 5 s grace period
    await admin('clock', { advance_secs: 6 });
    return expectError(refresh(rot5.client.ClientId, signed.RefreshToken), 'RefreshTokenReuseException');
  });
  await check(C, 'wrong and missing client secret', async () => {
    const s = await setUp('js-secret', { GenerateSecret: true });
    await addUser(s.pool.Id, 'jsuser');
    const { createHmac } = await import('node:crypto');
    const hash = createHmac('sha256', s.client.ClientSecret).update(`jsuser${s.client.ClientId}`).digest('base64');
    const signed = (
      await sdk.send(
        new InitiateAuthCommand({
          AuthFlow: 'USER_PASSWORD_AUTH',
          ClientId: s.client.ClientId,
          AuthParameters: { USERNAME: 'jsuser', PASSWORD: PASSWORD, SECRET_HASH: hash },
        }),
      )
    ).AuthenticationResult;
    await refresh(s.client.ClientId, signed.RefreshToken, { ClientSecret: s.client.ClientSecret });
    await expectError(
      refresh(s.client.ClientId, signed.RefreshToken, { ClientSecret: 'x'.repeat(30) }),
      'NotAuthorizedException',
      'SecretHash',
    );
    return expectError(refresh(s.client.ClientId, signed.RefreshToken), 'NotAuthorizedException', 'secret');
  });
  await check(C, 'RevokeToken ends the lineage', async () => {
    const signed = await passwordSignIn(rot0.client.ClientId, 'jsuser');
    const a = await refresh(rot0.client.ClientId, signed.RefreshToken);
    await sdk.send(new RevokeTokenCommand({ ClientId: rot0.client.ClientId, Token: signed.RefreshToken }));
    await expectError(
      refresh(rot0.client.ClientId, a.AuthenticationResult.RefreshToken),
      'NotAuthorizedException',
      'Refresh Token has been revoked',
    );
    return expectError(
      sdk.send(new GetUserCommand({ AccessToken: a.AuthenticationResult.AccessToken })),
      'NotAuthorizedException',
      'Access Token has been revoked',
    );
  });
  await check(C, 'GetUser and GlobalSignOut', async () => {
    const one = await passwordSignIn(plain.client.ClientId, 'jsuser');
    const two = await passwordSignIn(plain.client.ClientId, 'jsuser');
    const user = await sdk.send(new GetUserCommand({ AccessToken: one.AccessToken }));
    assert(user.Username === 'jsuser', 'username');
    assert(user.UserAttributes.some((a) => a.Name === 'sub'), 'sub attribute');
    await sdk.send(new GlobalSignOutCommand({ AccessToken: one.AccessToken }));
    return expectError(refresh(plain.client.ClientId, two.RefreshToken), 'NotAuthorizedException', 'revoked');
  });
  await check(C, 'throttling (HTTP 400) retried, attempts seen', async () => {
    const signed = await passwordSignIn(plain.client.ClientId, 'jsuser');
    const before = await served();
    await admin('faults', { kind: 'throttle', count: 2 });
    const out = await refresh(plain.client.ClientId, signed.RefreshToken);
    const calls = (await served()) - before;
    assert(out.$metadata.attempts === 3 && calls === 3, `attempts ${out.$metadata.attempts}, calls ${calls}`);
    return `attempts=${out.$metadata.attempts}`;
  });
  await check(C, 'throttling beyond max attempts surfaces TooManyRequestsException', async () => {
    const signed = await passwordSignIn(plain.client.ClientId, 'jsuser');
    await admin('faults', { kind: 'throttle', count: 3 });
    return expectError(refresh(plain.client.ClientId, signed.RefreshToken), 'TooManyRequestsException');
  });
  await check(C, '5xx faults retried', async () => {
    const signed = await passwordSignIn(plain.client.ClientId, 'jsuser');
    await admin('faults', { kind: 'server_error', count: 1, status: 500 });
    await admin('faults', { kind: 'server_error', count: 1, status: 503 });
    const out = await refresh(plain.client.ClientId, signed.RefreshToken);
    assert(out.$metadata.attempts === 3, `attempts ${out.$metadata.attempts}`);
    return `attempts=${out.$metadata.attempts}`;
  });
  await check(C, 'validation wording on a bad client id', () =>
    expectError(refresh('bad client id', 'a.b.c'), 'InvalidParameterException', 'regular expression pattern: [\\w+]+'),
  );
  await check(C, 'CORS preflight as a browser sends it', async () => {
    const r = await fetch(endpoint, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:3000',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-amz-target,x-amz-user-agent,amz-sdk-invocation-id,amz-sdk-request,cache-control',
      },
    });
    assert(r.status >= 200 && r.status < 300, `status ${r.status}`);
    assert(r.headers.get('access-control-allow-origin') === 'http://localhost:3000', 'origin echoed');
    const allowed = (r.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['content-type', 'x-amz-target', 'x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request', 'cache-control'])
      assert(allowed.includes(h), `${h} allowed`);
    return `status ${r.status}`;
  });
  return { plain, rot0 };
}

// ---- Amplify JS ---------------------------------------------------------------------------

class MapStorage {
  constructor() {
    this.map = new Map();
  }
  async setItem(k, v) {
    this.map.set(k, v);
  }
  async getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  async removeItem(k) {
    this.map.delete(k);
  }
  async clear() {
    this.map.clear();
  }
  find(suffix) {
    for (const [k, v] of this.map) if (k.endsWith(suffix)) return v;
    return null;
  }
}

async function amplifySuite() {
  const C = 'amplify-js';
  // Amplify names a device from `navigator` (getDeviceName), a browser global Node 20 lacks:
  // without one its ConfirmDevice call throws before it is sent and the device is dropped.
  globalThis.navigator ??= { userAgent: 'cogref-interop (Node)' };
  const rotating = await setUp('amplify-rot', {
    RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 0 },
  });
  await addUser(rotating.pool.Id, 'ampuser');
  const storage = new MapStorage();
  const configure = (s) => {
    Amplify.configure({
      Auth: { Cognito: { userPoolId: s.pool.Id, userPoolClientId: s.client.ClientId, userPoolEndpoint: endpoint } },
    });
    // After configure, which installs its default storage.
    cognitoUserPoolsTokenProvider.setKeyValueStorage(storage);
  };
  configure(rotating);

  await check(C, 'signIn with SRP (default flow)', async () => {
    const out = await signIn({ username: 'ampuser', password: PASSWORD });
    assert(out.isSignedIn, `next step ${JSON.stringify(out.nextStep)}`);
    assert(storage.find('.refreshToken'), 'refresh token stored');
  });
  await check(C, 'fetchAuthSession forceRefresh rotates the refresh token', async () => {
    const before = storage.find('.refreshToken');
    const session = await fetchAuthSession({ forceRefresh: true });
    const after = storage.find('.refreshToken');
    assert(session.tokens?.accessToken, 'access token');
    assert(after && after !== before, 'refresh token rotated');
    return expectError(refresh(rotating.client.ClientId, before), 'RefreshTokenReuseException');
  });
  await check(C, 'concurrent forced refreshes share one call', async () => {
    const counters = await admin('counters');
    const reuseBefore = counters.refusals.RefreshTokenReuseException ?? 0;
    const beforeGranted = counters.refreshes_granted;
    await Promise.all([1, 2, 3].map(() => fetchAuthSession({ forceRefresh: true })));
    const after = await admin('counters');
    const granted = after.refreshes_granted - beforeGranted;
    const reuse = (after.refusals.RefreshTokenReuseException ?? 0) - reuseBefore;
    // Amplify de-duplicates concurrent refreshes in one context: one call, no reuse.
    assert(granted === 1 && reuse === 0, `granted ${granted}, reuse refusals ${reuse}`);
    const s = await fetchAuthSession();
    assert(s.tokens?.accessToken, 'still signed in');
    return `granted=${granted}`;
  });
  await check(C, 'a throttled refresh is retried', async () => {
    const before = await served();
    await admin('faults', { kind: 'throttle', count: 1 });
    const s = await fetchAuthSession({ forceRefresh: true });
    assert(s.tokens?.accessToken, 'tokens');
    const calls = (await served()) - before;
    assert(calls === 2, `calls ${calls}`);
    return `calls=${calls}`;
  });
  await check(C, 'signOut revokes: the old refresh token is refused', async () => {
    const token = storage.find('.refreshToken');
    await signOut();
    assert(!storage.find('.refreshToken'), 'tokens cleared');
    return expectError(refresh(rotating.client.ClientId, token), 'NotAuthorizedException', 'revoked');
  });
  await check(C, 'signIn with USER_PASSWORD_AUTH, then global signOut', async () => {
    const out = await signIn({ username: 'ampuser', password: PASSWORD, options: { authFlowType: 'USER_PASSWORD_AUTH' } });
    assert(out.isSignedIn, 'signed in');
    const token = storage.find('.refreshToken');
    await fetchAuthSession({ forceRefresh: true });
    const rotated = storage.find('.refreshToken');
    await signOut({ global: true });
    await expectError(refresh(rotating.client.ClientId, rotated), 'NotAuthorizedException', 'revoked');
    return `first token ${token !== rotated ? 'rotated out' : 'unchanged'}`;
  });
  await check(C, 'wrong password refused', async () => {
    try {
      await signIn({ username: 'ampuser', password: 'Wrong-Passw0rd!' });
    } catch (e) {
      assert(e.name === 'NotAuthorizedException', `got ${e.name}`);
      return e.message;
    }
    throw new Error('signed in with a wrong password');
  });

  // Device tracking: sign-in returns NewDeviceMetadata, Amplify confirms the device and sends
  // its key on refresh; the service refuses a refresh of that lineage without the key.
  const { UserPool } = await sdk.send(
    new CreateUserPoolCommand({
      PoolName: 'amplify-devices',
      DeviceConfiguration: { ChallengeRequiredOnNewDevice: false, DeviceOnlyRememberedOnUserPrompt: false },
    }),
  );
  const { UserPoolClient } = await sdk.send(
    new CreateUserPoolClientCommand({
      UserPoolId: UserPool.Id,
      ClientName: 'amplify-devices',
      RefreshTokenRotation: { Feature: 'ENABLED', RetryGracePeriodSeconds: 10 },
    }),
  );
  await addUser(UserPool.Id, 'devuser');
  configure({ pool: UserPool, client: UserPoolClient });
  await check(C, 'device confirmed at sign-in, needed and sent on refresh', async () => {
    const out = await signIn({ username: 'devuser', password: PASSWORD });
    assert(out.isSignedIn, 'signed in');
    const deviceKey = storage.find('.deviceKey');
    assert(deviceKey, 'device key stored after ConfirmDevice');
    // The lineage is bound to the device: without its key the refresh token does not refresh.
    await expectError(
      refresh(UserPoolClient.ClientId, storage.find('.refreshToken')),
      'NotAuthorizedException',
      'Invalid Refresh Token.',
    );
    const r = await refresh(UserPoolClient.ClientId, storage.find('.refreshToken'), { DeviceKey: deviceKey });
    assert(!r.AuthenticationResult.NewDeviceMetadata, 'a refresh returns no device metadata');
    await fetchAuthSession({ forceRefresh: true });
    await signOut();
    return `device ${deviceKey.slice(0, 12)}…`;
  });
}

await sdkSuite();
await amplifySuite();
process.exitCode = failures === 0 ? 0 : 1;
