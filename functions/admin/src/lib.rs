//! The `admin` function: the admin API and console behind API Gateway's
//! JWT authorizer, served by the same axum router as `timepost serve`.
