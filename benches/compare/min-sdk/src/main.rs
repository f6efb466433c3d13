//! The official SDK: `aws-sdk-cognitoidentityprovider` with default features,
//! `BehaviorVersion::latest()`, the endpoint pointed at the loopback server, no credentials (the
//! operation is unsigned).

use std::sync::Arc;

use aws_sdk_cognitoidentityprovider as cognito;
use bench_common::{CLIENT_ID, check, refresh_token, run_tokio, settings};

fn main() {
    run_tokio(|| {
        let s = Arc::new(settings());
        let config = cognito::Config::builder()
            .behavior_version(cognito::config::BehaviorVersion::latest())
            .region(cognito::config::Region::new("us-east-1"))
            .endpoint_url(&s.endpoint)
            .build();
        let client = cognito::Client::from_conf(config);
        let token: Arc<str> = refresh_token().into();
        move || {
            let (client, token, s) = (client.clone(), token.clone(), s.clone());
            async move {
                let result = client
                    .get_tokens_from_refresh_token()
                    .refresh_token(token.as_ref())
                    .client_id(CLIENT_ID)
                    .send()
                    .await;
                let answer = match &result {
                    Ok(out)
                        if out
                            .authentication_result()
                            .is_some_and(|r| r.access_token().is_some()) =>
                    {
                        Ok(())
                    }
                    Ok(_) => Err(None),
                    Err(e) => Err(e.as_service_error().and_then(|e| e.meta().code())),
                };
                check(&s, answer, "aws-sdk-cognitoidentityprovider");
            }
        }
    });
}
